/* The GPT-2 pre-tokenizer: contractions, letter runs, number runs, other-symbol runs and
 * whitespace, each optionally led by one space. The pattern is GPT-2's, except that \s is
 * spelled out as Unicode White_Space (PCRE2's UCP \s lacks U+0085), which is what tiktoken
 * and Hugging Face tokenizers (Rust's regex) use. */
#include "tok_internal.h"

#define WS "\\s\\x{85}"
static const char pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS
                              "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";

pcre2_code *tok_compile_regex(char *errbuf, size_t errlen) {
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof(msg));
        tok_fail(errbuf, errlen, "compiling the pre-tokenizer regex: %s at %zu", (char *)msg,
                 (size_t)at);
        return NULL;
    }
    /* Without JIT (some platforms) the interpreter gives the same matches, only slower. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF, as PCRE2
 * requires of a subject matched with PCRE2_NO_UTF_CHECK. */
size_t tok_utf8_char(const unsigned char *s, size_t len) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0;
        if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (len < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return need;
}
