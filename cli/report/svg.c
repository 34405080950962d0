/* The chart writer (svg.h). Coordinates are written with one decimal: sub-pixel precision
 * is invisible and keeps the page small and its DOM stable for tests. */
#include "svg.h"

#include <math.h>
#include <string.h>

void qpo_html_escape(FILE *out, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&#39;", out);
            break;
        default:
            fputc(*s, out);
        }
    }
}

static double nice_step(double span, int target) {
    double raw = span / (target > 1 ? target : 1);
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

int qpo_svg_ticks(double lo, double hi, int target, double *out, int max, double *step) {
    if (!isfinite(lo) || !isfinite(hi))
        lo = 0, hi = 1;
    if (hi < lo) {
        double t = lo;
        lo = hi, hi = t;
    }
    if (hi - lo < 1e-12 * (fabs(hi) + 1)) { /* a flat series: an axis around its value */
        double pad = fabs(hi) > 0 ? fabs(hi) * 0.1 : 1;
        lo -= pad, hi += pad;
    }
    double s = nice_step(hi - lo, target);
    double first = floor(lo / s + 1e-9) * s;
    int n = 0;
    for (double v = first; v <= hi + s * (1 - 1e-9) && n < max; v = first + n * s) {
        out[n++] = fabs(v) < s * 1e-9 ? 0 : v; /* no "-0" */
        if (v >= hi - s * 1e-9)
            break;
    }
    *step = s;
    return n;
}

void qpo_svg_tick_label(double v, double step, char *buf, size_t len) {
    if (fabs(v) >= 1e6 || (step < 1e-4 && v != 0)) {
        snprintf(buf, len, "%.2g", v);
        return;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(buf, len, "%.*f", dec, v);
}

double qpo_chart_x(const qpo_chart *c, double x) {
    double w = c->width - c->left - c->right;
    return c->left + (x - c->x0) / (c->x1 - c->x0) * w;
}

double qpo_chart_y(const qpo_chart *c, double y) {
    double h = c->height - c->top - c->bottom;
    return c->top + (1 - (y - c->y0) / (c->y1 - c->y0)) * h;
}

static void text(FILE *o, double x, double y, const char *anchor, const char *cls, const char *s) {
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" class=\"%s\">", x, y, anchor, cls);
    qpo_html_escape(o, s);
    fputs("</text>\n", o);
}

static void x_axis(qpo_chart *c, double x0, double x1, int integer_x) {
    double t[32], step;
    int n = qpo_svg_ticks(x0, x1, 6, t, 32, &step);
    if (integer_x && step < 1)
        n = qpo_svg_ticks(x0, x1, (int)(x1 - x0) + 1, t, 32, &step), step = step < 1 ? 1 : step;
    if (integer_x && step == 1 && x1 - x0 >= 0) { /* whole numbers with half a step of room */
        n = 0;
        for (double v = floor(x0); v <= x1 + 1e-9 && n < 32; v += 1)
            t[n++] = v;
        c->x0 = t[0] - 0.5, c->x1 = t[n - 1] + 0.5;
    } else {
        c->x0 = t[0], c->x1 = t[n - 1];
    }
    c->xstep = step;
    char label[32];
    for (int i = 0; i < n; i++) {
        double px = qpo_chart_x(c, t[i]);
        fprintf(c->out, "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", px,
                c->top, px, c->height - c->bottom);
        qpo_svg_tick_label(t[i], step, label, sizeof label);
        text(c->out, px, c->height - c->bottom + 16, "middle", "tick", label);
    }
}

static void y_axis(qpo_chart *c, double y0, double y1) {
    double t[32], step;
    int n = qpo_svg_ticks(y0, y1, 5, t, 32, &step);
    c->y0 = t[0], c->y1 = t[n - 1], c->ystep = step;
    char label[32];
    for (int i = 0; i < n; i++) {
        double py = qpo_chart_y(c, t[i]);
        fprintf(c->out, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n",
                c->left, py, c->width - c->right, py);
        qpo_svg_tick_label(t[i], step, label, sizeof label);
        text(c->out, c->left - 6, py + 4, "end", "tick", label);
    }
}

void qpo_chart_begin(qpo_chart *c, FILE *out, int width, int height, const char *title,
                     const char *xlabel, const char *ylabel, double x0, double x1, double y0,
                     double y1, int integer_x) {
    *c = (qpo_chart){.out = out,
                     .width = width,
                     .height = height,
                     .left = 64,
                     .right = 150,
                     .top = 34,
                     .bottom = 46,
                     .x0 = x0,
                     .x1 = x1,
                     .y0 = y0,
                     .y1 = y1};
    fprintf(out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n",
            width, height, width, height);
    text(out, width / 2.0, 20, "middle", "title", title);
    fprintf(out, "<g class=\"axes\">\n");
    x_axis(c, x0, x1, integer_x);
    y_axis(c, y0, y1);
    fprintf(out, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>\n", c->left,
            c->top, width - c->left - c->right, height - c->top - c->bottom);
    text(out, c->left + (width - c->left - c->right) / 2.0, height - 8, "middle", "label", xlabel);
    fprintf(out,
            "<text class=\"label\" text-anchor=\"middle\" transform=\"translate(16 %.1f) "
            "rotate(-90)\">",
            c->top + (height - c->top - c->bottom) / 2.0);
    qpo_html_escape(out, ylabel);
    fputs("</text>\n</g>\n", out);
}

void qpo_chart_end(qpo_chart *c) {
    fputs("</svg>\n", c->out);
}

void qpo_chart_line(qpo_chart *c, const double *x, const double *y, int n, const char *colour,
                    double stroke_width, int dashed) {
    int open = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            if (open)
                fputs("\"/>\n", c->out);
            open = 0;
            continue;
        }
        if (!open)
            fprintf(c->out,
                    "<path class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\"%s "
                    "d=\"M",
                    colour, stroke_width, dashed ? " stroke-dasharray=\"6 4\"" : "");
        else
            fputs(" L", c->out);
        fprintf(c->out, "%.1f %.1f", qpo_chart_x(c, x[i]), qpo_chart_y(c, y[i]));
        open = 1;
    }
    if (open)
        fputs("\"/>\n", c->out);
}

void qpo_chart_points(qpo_chart *c, const double *x, const double *y, const double *err, int n,
                      const char *colour, int labels, const char *css_class) {
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i]))
            continue;
        double px = qpo_chart_x(c, x[i]), py = qpo_chart_y(c, y[i]);
        if (err && err[i] > 0)
            fprintf(c->out,
                    "<path class=\"errbar\" stroke=\"%s\" d=\"M%.1f %.1f L%.1f %.1f M%.1f %.1f "
                    "L%.1f %.1f M%.1f %.1f L%.1f %.1f\"/>\n",
                    colour, px, qpo_chart_y(c, y[i] - err[i]), px, qpo_chart_y(c, y[i] + err[i]),
                    px - 4, qpo_chart_y(c, y[i] - err[i]), px + 4, qpo_chart_y(c, y[i] - err[i]),
                    px - 4, qpo_chart_y(c, y[i] + err[i]), px + 4, qpo_chart_y(c, y[i] + err[i]));
        fprintf(c->out, "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n",
                css_class, px, py, colour);
        if (labels) {
            char v[32];
            snprintf(v, sizeof v, "%.3g", y[i]);
            text(c->out, px + 7, py - 7, "start", "value", v);
        }
    }
}

void qpo_chart_hline(qpo_chart *c, double y, const char *colour, const char *label) {
    double py = qpo_chart_y(c, y);
    fprintf(c->out,
            "<path class=\"ref\" stroke=\"%s\" stroke-dasharray=\"5 3\" d=\"M%d %.1f L%d "
            "%.1f\"/>\n",
            colour, c->left, py, c->width - c->right, py);
    /* Inside the plot, right-aligned above the line: the right margin holds the legend. */
    text(c->out, c->width - c->right - 6, py - 5, "end", "reflabel", label);
}

void qpo_chart_bar(qpo_chart *c, double x, double width, double y, const char *colour,
                   const char *css_class) {
    double base = c->y0 > 0 ? c->y0 : c->y1 < 0 ? c->y1 : 0;
    double xa = qpo_chart_x(c, x - width / 2), xb = qpo_chart_x(c, x + width / 2);
    double ya = qpo_chart_y(c, y > base ? y : base), yb = qpo_chart_y(c, y > base ? base : y);
    fprintf(c->out,
            "<rect class=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
            "fill=\"%s\"/>\n",
            css_class, xa, ya, xb - xa, yb - ya, colour);
}

void qpo_chart_legend(qpo_chart *c, int i, const char *colour, const char *name) {
    double x = c->width - c->right + 10, y = c->top + 6 + 18.0 * i;
    fprintf(c->out,
            "<rect class=\"swatch\" x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" "
            "fill=\"%s\"/>\n",
            x, y, colour);
    text(c->out, x + 16, y + 10, "start", "legend", name);
}
