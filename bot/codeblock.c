/* codeblock — Markdown fences the way CommonMark reads them (a run of three or more ` or ~,
 * closed by a run of the same character at least as long), plus the shapes that models and
 * chat clients actually produce: a closing fence glued to the last code line
 * ("print(1)```"), a whole block on one line (Slack's "```print(1)```"), and, while an
 * answer is still streaming, a block with no closing fence yet whose last line may be the
 * first backticks of it. Works on (pointer, length) ranges; nothing is copied until the
 * result is built. */
#include "bot/codeblock.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct span {
    const char *p;
    size_t n;
} span;

static int blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\f' || ch == '\v';
}

static span trim(span s)
{
    while (s.n && blank(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n && blank(s.p[s.n - 1]))
        s.n--;
    return s;
}

/* Drops whole blank lines at both ends but keeps the first line's indentation. */
static span trim_blank_lines(span s)
{
    size_t start = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] == '\n')
            start = i + 1;
        else if (!blank(s.p[i]))
            break;
        if (i + 1 == s.n)
            start = s.n;
    }
    s.p += start;
    s.n -= start;
    while (s.n && blank(s.p[s.n - 1]))
        s.n--;
    return s;
}

/* The line starting at OFF: its end (without the newline) and where the next one starts. */
static size_t line_end(span s, size_t off, size_t *next)
{
    const char *nl = memchr(s.p + off, '\n', s.n - off);
    size_t end = nl ? (size_t)(nl - s.p) : s.n;
    *next = nl ? end + 1 : s.n;
    return end;
}

/* A fence run at the start of LINE (after white space): its char and length, 0 if none. */
static size_t fence_run(span line, char *ch, size_t *skip)
{
    size_t i = 0;
    while (i < line.n && (line.p[i] == ' ' || line.p[i] == '\t'))
        i++;
    if (i == line.n || (line.p[i] != '`' && line.p[i] != '~'))
        return 0;
    char c = line.p[i];
    size_t k = i;
    while (k < line.n && line.p[k] == c)
        k++;
    if (k - i < 3)
        return 0;
    *ch = c;
    *skip = k;
    return k - i;
}

static int is_closing(span line, char ch, size_t len)
{
    char c;
    size_t skip;
    size_t n = fence_run(line, &c, &skip);
    if (!n || c != ch || n < len)
        return 0;
    return trim((span){line.p + skip, line.n - skip}).n == 0;
}

static char *copy_span(span s)
{
    char *r = malloc(s.n + 1);
    if (r) {
        memcpy(r, s.p, s.n);
        r[s.n] = '\0';
    }
    return r;
}

/* The language from an info string: its first word, lower case, with common aliases
 * merged. NULL for none; *OOM set when allocation failed. */
static char *language(span info, int *oom)
{
    info = trim(info);
    while (info.n && (info.p[0] == '{' || info.p[0] == '.')) {
        info.p++;
        info.n--;
    }
    size_t n = 0;
    while (n < info.n && !blank(info.p[n]) && info.p[n] != '}' && info.p[n] != ',')
        n++;
    if (n == 0 || n > 32)
        return NULL;
    char buf[33];
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)tolower((unsigned char)info.p[i]);
    buf[n] = '\0';
    static const char *const alias[][2] = {
        {"py", "python"},      {"python3", "python"},  {"py3", "python"},
        {"sh", "bash"},        {"shell", "bash"},      {"zsh", "bash"},
        {"js", "javascript"},  {"node", "javascript"}, {"nodejs", "javascript"},
        {"mjs", "javascript"},
    };
    const char *name = buf;
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (strcmp(buf, alias[i][0]) == 0)
            name = alias[i][1];
    char *r = strdup(name);
    if (!r)
        *oom = 1;
    return r;
}

/* An unterminated block's body: drop a closing fence glued to the last line, or (while
 * streaming) a last line that is only the first characters of the closing fence. */
static span open_body(span body, char ch, size_t flen)
{
    size_t n = body.n;
    while (n && blank(body.p[n - 1]))
        n--;
    size_t run = 0;
    while (run < n && body.p[n - 1 - run] == ch)
        run++;
    if (run >= flen) {
        body.n = n - run;
        return body;
    }
    if (run == 0 || n != body.n)
        return body;
    size_t start = n - run;
    while (start && (body.p[start - 1] == ' ' || body.p[start - 1] == '\t'))
        start--;
    if (start == 0 || body.p[start - 1] == '\n')
        body.n = start;
    return body;
}

char *codeblock_extract(const char *text, size_t len, char **lang)
{
    span s = {text ? text : "", text ? len : 0};
    if (lang)
        *lang = NULL;
    size_t off = 0, next;
    while (off < s.n) {
        size_t end = line_end(s, off, &next);
        span line = {s.p + off, end - off};
        char ch;
        size_t skip, flen = fence_run(line, &ch, &skip);
        if (flen && !(ch == '`' && memchr(line.p + skip, '`', line.n - skip))) {
            int oom = 0;
            char *lg = language((span){line.p + skip, line.n - skip}, &oom);
            if (oom)
                return NULL;
            size_t body_start = next, body_end = s.n, o = next;
            int closed = 0;
            while (o < s.n && !closed) {
                size_t e = line_end(s, o, &next);
                if (is_closing((span){s.p + o, e - o}, ch, flen)) {
                    body_end = o;
                    closed = 1;
                }
                o = next;
            }
            span body = {s.p + body_start, body_end - body_start};
            if (!closed)
                body = open_body(body, ch, flen);
            char *code = copy_span(trim_blank_lines(body));
            if (!code || !lang)
                free(lg);
            else
                *lang = lg;
            return code;
        }
        off = next;
    }
    return copy_span(trim_blank_lines(s));
}

/* Inside a message that is one block: a line that opens or closes another fence means the
 * message holds more than one block (or prose between blocks). */
static int has_inner_fence(span inner, char ch)
{
    size_t off = 0, next;
    while (off < inner.n) {
        size_t end = line_end(inner, off, &next);
        char c;
        size_t skip;
        if (off > 0 && fence_run((span){inner.p + off, end - off}, &c, &skip) && c == ch)
            return 1;
        off = next;
    }
    return 0;
}

/* A first line that reads as a language name rather than as code. */
static int looks_like_info(span first)
{
    span t = trim(first);
    if (t.n == 0 || t.n > 32)
        return 0;
    for (size_t i = 0; i < t.n; i++) {
        unsigned char c = (unsigned char)t.p[i];
        if (!isalnum(c) && c != '_' && c != '+' && c != '#' && c != '.' && c != '-')
            return 0;
    }
    return 1;
}

int codeblock_parse_message(const char *message, char **code, char **lang)
{
    *code = NULL;
    *lang = NULL;
    if (!message)
        return 0;
    span s = trim((span){message, strlen(message)});
    char ch;
    size_t skip;
    size_t open = fence_run((span){s.p, s.n}, &ch, &skip);
    if (!open || s.p[0] != ch)
        return 0;
    size_t close = 0;
    while (close < s.n - open && s.p[s.n - 1 - close] == ch)
        close++;
    if (close < 3)
        return 0;
    span inner = {s.p + open, s.n - open - close};
    if (has_inner_fence(inner, ch))
        return 0;
    const char *nl = memchr(inner.p, '\n', inner.n);
    span info = {inner.p, 0};
    if (nl) {
        span first = {inner.p, (size_t)(nl - inner.p)};
        if (looks_like_info(first))
            info = first;
        if (looks_like_info(first) || trim(first).n == 0) {
            inner.p += first.n + 1;
            inner.n -= first.n + 1;
        }
    }
    span body = trim_blank_lines(inner);
    if (body.n == 0)
        return 0;
    int oom = 0;
    char *lg = language(info, &oom);
    char *c = copy_span(body);
    if (oom || !c) {
        free(lg);
        free(c);
        return -ENOMEM;
    }
    *code = c;
    *lang = lg;
    return 1;
}
