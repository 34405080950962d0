#ifndef QPO_REPORT_SVG_H
#define QPO_REPORT_SVG_H

/* A small inline-SVG chart writer for `qpo report`: one plot area with numeric axes, lines,
 * points with error bars, bars and labelled reference lines. Plain SVG 1.1 inside HTML, no
 * script and no external asset, so the page renders the same from a file anywhere. Every
 * string it writes is escaped; numbers are written with a fixed precision. */

#include <stddef.h>
#include <stdio.h>

/* Writes s with &, <, >, " and ' escaped (safe in HTML text, attributes and SVG). NULL: "". */
void qpo_html_escape(FILE *out, const char *s);

/* "Nice" axis ticks covering [lo, hi]: steps of 1, 2 or 5 times a power of ten, about
 * `target` of them. Writes at most max ticks to out, returns how many; *step gets the step.
 * lo == hi widens the range so a flat series still gets an axis. */
int qpo_svg_ticks(double lo, double hi, int target, double *out, int max, double *step);

/* A tick label with as many decimals as the step needs ("0.25", "1e+06" for huge values). */
void qpo_svg_tick_label(double v, double step, char *buf, size_t len);

typedef struct qpo_chart {
    FILE *out;
    int width, height;            /* pixels of the whole SVG */
    int left, right, top, bottom; /* margins around the plot area */
    double x0, x1, y0, y1;        /* data range of the axes (after ticks widen it) */
    double xstep, ystep;
} qpo_chart;

/* Opens <svg> with a title and axis labels, and draws the grid and ticks for the data range
 * [x0, x1] x [y0, y1] (widened to whole ticks). integer_x: ticks on whole numbers only (loops,
 * epochs). */
void qpo_chart_begin(qpo_chart *c, FILE *out, int width, int height, const char *title,
                     const char *xlabel, const char *ylabel, double x0, double x1, double y0,
                     double y1, int integer_x);
void qpo_chart_end(qpo_chart *c);

double qpo_chart_x(const qpo_chart *c, double x);
double qpo_chart_y(const qpo_chart *c, double y);

/* A polyline through n points (NaN y values break the line), in a CSS colour. */
void qpo_chart_line(qpo_chart *c, const double *x, const double *y, int n, const char *colour,
                    double stroke_width, int dashed);
/* Points with vertical error bars y +- err (err NULL or 0: none) and a <title> tooltip-free
 * text label above each point when labels is non-zero (the value, 3 significant digits). */
void qpo_chart_points(qpo_chart *c, const double *x, const double *y, const double *err, int n,
                      const char *colour, int labels, const char *css_class);
/* A horizontal reference line across the plot with a label at its right end. */
void qpo_chart_hline(qpo_chart *c, double y, const char *colour, const char *label);
/* A bar from y = 0 (or the axis bottom) to y at x, width in data units. */
void qpo_chart_bar(qpo_chart *c, double x, double width, double y, const char *colour,
                   const char *css_class);
/* A legend entry (a colour swatch and its escaped name) in the top-right corner, row i. */
void qpo_chart_legend(qpo_chart *c, int i, const char *colour, const char *name);

#endif
