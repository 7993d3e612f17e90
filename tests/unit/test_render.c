/* Unit tests for bot/render: layout of each phase, limits in code points and bytes for many
 * sizes and states, output safety (binary, Unicode, fences, \r, escapes), bounded memory. */
#include "tests/unit/check.h"

#include <stdint.h>

#include "bot/render.h"
#include "common/strbuf.h"
#include "common/utf8.h"

static size_t cps(const char *s)
{
    return utf8_count(s, strlen(s));
}

/* The text is valid UTF-8 with no NUL or stray control characters. */
static void check_clean(const char *t)
{
    strbuf b = {0};
    CHECK(utf8_sanitize(&b, t, strlen(t)) == 0);
    CHECK_STR(strbuf_str(&b), t);
    strbuf_free(&b);
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        CHECK(*p >= 0x20 || *p == '\n' || *p == '\t');
}

/* Every ``` starts a line and is a fence (the opening ones may carry a language), and fences
 * pair up: nothing inside a block can close it. */
static void check_fences(const char *t)
{
    int open = 0;
    const char *line = t;
    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        const char *f = strstr(line, "```");
        if (f && f < line + len) {
            CHECK(f == line);
            if (open)
                CHECK(len == 3);
            open = !open;
            CHECK(!memmem(line + 3, len - 3, "```", 3));
        }
        line += len + (nl ? 1 : 0);
    }
    CHECK(open == 0);
}

static void check_limits(const char *t, size_t max_chars, size_t max_bytes)
{
    CHECK(t != NULL);
    CHECK(cps(t) <= max_chars);
    if (max_bytes)
        CHECK(strlen(t) <= max_bytes);
    check_clean(t);
}

static char *text(render *r, uint64_t now)
{
    char *t = render_text(r, now);
    CHECK(t != NULL);
    return t;
}

TEST(phases_show_their_status)
{
    render *r = render_new(2000, 0, 3);
    CHECK(r != NULL);
    render_phase(r, RENDER_GENERATING, NULL, 1000);
    char *t = text(r, 1000);
    CHECK_STR(t, "✍️ Writing code…");
    free(t);
    render_code(r, "python", "print('hi')\n");
    render_phase(r, RENDER_RUNNING, NULL, 5000);
    t = text(r, 8400);
    CHECK_STR(t, "📝 Code:\n```python\nprint('hi')\n```\n🚀 Running… 3 s");
    free(t);
    render_output(r, 1, "hi\n", 3);
    render_phase(r, RENDER_DONE, NULL, 6200);
    t = text(r, 99999);
    CHECK_STR(t, "📝 Code:\n```python\nprint('hi')\n```\n✅ Done. (1.2 s)\n```\nhi\n```");
    free(t);
    t = text(r, 7777777); /* a finished turn's text does not move with the clock */
    CHECK_STR(t, "📝 Code:\n```python\nprint('hi')\n```\n✅ Done. (1.2 s)\n```\nhi\n```");
    free(t);
    render_phase(r, RENDER_WAITING, "Model busy (529), retrying in 2 s", 7000);
    t = text(r, 7000);
    CHECK(strstr(t, "\n⏳ Model busy (529), retrying in 2 s\n"));
    free(t);
    render_phase(r, RENDER_STOPPED, "cancelled by user", 7000);
    t = text(r, 7000);
    CHECK(strstr(t, "\n⏹ Stopped: cancelled by user\n"));
    free(t);
    render_phase(r, RENDER_STOPPED, NULL, 7000);
    t = text(r, 7000);
    CHECK(strstr(t, "\n⏹ Stopped.\n"));
    free(t);
    render_free(r);
}

TEST(attempts_fold_into_summaries)
{
    render *r = render_new(2000, 0, 3);
    render_attempt(r, 1);
    render_code(r, "python", "print(x)");
    render_phase(r, RENDER_RUNNING, NULL, 0);
    render_output(r, 2, "Traceback (most recent call last):\n", 35);
    render_error(r, "NameError", "name 'x' is not defined");
    char *t = text(r, 0);
    CHECK(strstr(t, "\n❌ Error: NameError: name 'x' is not defined"));
    CHECK(strstr(t, "⚠️ Traceback (most recent call last):\n"));
    free(t);
    render_attempt(r, 2);
    render_phase(r, RENDER_GENERATING, NULL, 10);
    render_code(r, "python", "x = 1\nprint(x)");
    t = text(r, 10);
    CHECK_STR(t, "❌ Attempt 1/3: NameError: name 'x' is not defined\n"
                 "🔄 Attempt 2/3 — fixing error\n"
                 "📝 Code:\n```python\nx = 1\nprint(x)\n```\n"
                 "✍️ Writing code…");
    free(t);
    /* an attempt with no error is summarised by its last stderr line */
    render_phase(r, RENDER_RUNNING, NULL, 20);
    render_output(r, 2, "Killed", 6);
    render_attempt(r, 3);
    render_phase(r, RENDER_FAILED, NULL, 30);
    t = text(r, 30);
    CHECK(strstr(t,
                 "❌ Attempt 2/3: Killed\n🔄 Attempt 3/3 — fixing error\n🛑 Failed after 3 "
                 "attempts."));
    CHECK(!strstr(t, "x = 1")); /* the old attempt's code is folded away */
    free(t);
    render_free(r);
}

TEST(output_interleaves_streams_in_order)
{
    render *r = render_new(2000, 0, 3);
    render_phase(r, RENDER_RUNNING, NULL, 0);
    render_output(r, 1, "a\n", 2);
    render_output(r, 2, "warn\n", 5);
    render_output(r, 1, "par", 3);
    render_output(r, 2, "E", 1); /* cuts into stdout's unfinished line */
    render_output(r, 1, "tial\n", 5);
    render_output(r, 1, "\tx\n", 3);
    char *t = text(r, 0);
    CHECK_STR(t, "🚀 Running… 0 s\n```\na\n⚠️ warn\npar\n⚠️ E\ntial\n\tx\n```");
    free(t);
    render_free(r);
}

TEST(long_output_keeps_newest_lines_and_counts_the_rest)
{
    render *r = render_new(2000, 0, 3);
    render_code(r, "python", "for i in range(100000): print(i)");
    render_phase(r, RENDER_RUNNING, NULL, 0);
    char line[32];
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(line, sizeof(line), "line %d\n", i);
        render_output(r, 1, line, (size_t)n);
    }
    char *t = text(r, 0);
    check_limits(t, 2000, 0);
    check_fences(t);
    CHECK(cps(t) > 1900); /* the room is used */
    CHECK(strstr(t, "for i in range(100000): print(i)"));
    CHECK(strstr(t, "\nline 99999\n```"));
    const char *m = strstr(t, "```\n… ");
    CHECK(m);
    unsigned long long hidden = strtoull(m + strlen("```\n… "), NULL, 10);
    CHECK(strstr(m, " earlier lines not shown …\nline "));
    unsigned long long first = strtoull(strstr(m, "…\nline ") + strlen("…\nline "), NULL, 10);
    CHECK_INT(hidden, first); /* lines 0..first-1 are exactly the hidden ones */
    free(t);
    render_free(r);
}

TEST(memory_stays_bounded_for_megabytes_of_output)
{
    render *r = render_new(200, 0, 3);
    render_phase(r, RENDER_RUNNING, NULL, 0);
    static char chunk[1 << 16];
    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = i % 7 == 6 ? '\n' : 'a' + (char)(i % 26);
    for (int i = 0; i < 160; i++) /* 10 MB */
        render_output(r, 1, chunk, sizeof(chunk));
    /* one endless line too */
    for (int i = 0; i < 32; i++)
        render_output(r, 2, chunk, 6);
    char *t = text(r, 0);
    check_limits(t, 200, 0);
    free(t);
    render_free(r); /* ASan's leak check and the 30 s timeout watch the rest */
}

TEST(binary_output_is_made_safe)
{
    srand(7);
    for (int round = 0; round < 50; round++) {
        render *r = render_new(500, 700, 3);
        render_phase(r, RENDER_RUNNING, NULL, 0);
        unsigned char buf[4096];
        for (int k = 0; k < 20; k++) {
            size_t n = (size_t)(rand() % (int)sizeof(buf));
            for (size_t i = 0; i < n; i++)
                buf[i] = (unsigned char)rand();
            buf[0] = 0;
            buf[n ? n - 1 : 0] = 0xff;
            render_output(r, 1 + rand() % 2, (const char *)buf, n);
            char *t = text(r, 0);
            check_limits(t, 500, 700);
            check_fences(t);
            free(t);
        }
        render_free(r);
    }
}

TEST(invalid_bytes_nul_and_controls)
{
    render *r = render_new(2000, 0, 3);
    render_phase(r, RENDER_RUNNING, NULL, 0);
    render_output(r, 1,
                  "a\0b\xff"
                  "c\x01\x7f"
                  "d\n",
                  9);
    const char *esc = "\x1b[31mred\x1b[0m \x1b]0;title\x07ok\x1b]2;t\x1b\\!\x1b(B\n";
    render_output(r, 1, esc, strlen(esc));
    char *t = text(r, 0);
    CHECK(strstr(t, "\nab\xEF\xBF\xBD"
                    "cd\nred ok!\n```"));
    free(t);
    render_free(r);
}

TEST(utf8_cut_across_calls_is_reassembled)
{
    const char *s = "é€😀 日本語 e\xCC\x81\n";
    size_t n = strlen(s);
    for (size_t cut = 1; cut < n; cut++) {
        for (size_t cut2 = cut; cut2 < n; cut2++) {
            render *r = render_new(2000, 0, 3);
            render_phase(r, RENDER_RUNNING, NULL, 0);
            render_output(r, 1, s, cut);
            render_output(r, 1, s + cut, cut2 - cut);
            render_output(r, 1, s + cut2, n - cut2);
            char *t = text(r, 0);
            CHECK_STR(t, "🚀 Running… 0 s\n```\né€😀 日本語 e\xCC\x81\n```");
            free(t);
            render_free(r);
        }
    }
    /* a cut sequence that turns out invalid, and one per stream */
    render *r = render_new(2000, 0, 3);
    render_output(r, 1, "\xE2", 1);
    render_output(r, 2, "\xE2\x82", 2);
    render_output(r, 1, "\xE2\x82\xAC\n", 4);
    render_output(r, 2, "\xAC\n", 2);
    char *t = text(r, 0);
    CHECK(strstr(t, "```\n\xEF\xBF\xBD€\n⚠️ €\n```"));
    free(t);
    render_free(r);
}

TEST(unicode_counts_code_points_and_bytes)
{
    /* 4-byte emoji, 3-byte CJK and combining marks: limits in both units */
    const char *pieces[] = {"😀", "日本", "e\xCC\x81", "👍🏽", "ß"};
    size_t limits[][2] = {{200, 0}, {200, 300}, {500, 600}, {2000, 2100}, {300, 1200}};
    for (size_t li = 0; li < 5; li++) {
        render *r = render_new(limits[li][0], limits[li][1], 3);
        render_code(r, "python", "print('😀' * 1000)  # 日本語");
        render_phase(r, RENDER_RUNNING, NULL, 0);
        for (int i = 0; i < 3000; i++) {
            const char *p = pieces[i % 5];
            /* byte by byte: every sequence is cut across calls */
            for (size_t k = 0; p[k]; k++)
                render_output(r, 1 + i % 2, p + k, 1);
            if (i % 37 == 0)
                render_output(r, 1 + i % 2, "\n", 1);
            char *t = text(r, 0);
            check_limits(t, limits[li][0], limits[li][1]);
            check_fences(t);
            free(t);
        }
        render_free(r);
    }
}

TEST(fence_in_output_or_code_cannot_close_the_block)
{
    render *r = render_new(2000, 0, 3);
    render_code(r, "python", "print('```')\ns = '``````'");
    render_phase(r, RENDER_RUNNING, NULL, 0);
    const char *out = "```\nnot code\n````python\n`` `";
    render_output(r, 1, out, strlen(out));
    render_output(r, 2, "``", 2);
    render_output(r, 2, "`x\n", 3);
    render_error(r, "ValueError", "bad ``` value");
    render_note(r, "```");
    char *t = text(r, 0);
    check_fences(t);
    CHECK(strstr(t, "print('``\u200b`')"));
    CHECK(strstr(t, "s = '``\u200b``\u200b``'"));
    CHECK(strstr(t, "\n``\u200b`\nnot code\n``\u200b``python\n`` `\n⚠️ ``\u200b`x\n```"));
    CHECK(strstr(t, "❌ Error: ValueError: bad ``\u200b` value"));
    free(t);
    render_free(r);
}

TEST(carriage_return_redraws_the_line)
{
    render *r = render_new(2000, 0, 3);
    render_phase(r, RENDER_RUNNING, NULL, 0);
    render_output(r, 1, "start\r\n", 7);
    for (int i = 0; i <= 100; i += 10) {
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "\r%3d%%|%.*s|", i, i / 10, "##########");
        render_output(r, 2, buf, (size_t)n);
    }
    char *t = text(r, 0);
    CHECK_STR(t, "🚀 Running… 0 s\n```\nstart\n⚠️ 100%|##########|\n```");
    free(t);
    render_output(r, 2, "\n", 1);
    render_output(r, 1, "abc\r", 4); /* \r then the end: the line stays until redrawn */
    t = text(r, 0);
    CHECK(strstr(t, "100%|##########|\nabc\n```"));
    free(t);
    render_output(r, 1, "x", 1);
    t = text(r, 0);
    CHECK(strstr(t, "100%|##########|\nx\n```"));
    free(t);
    render_free(r);
}

TEST(huge_code_keeps_head_and_tail)
{
    strbuf code = {0};
    for (int i = 0; i < 5000; i++)
        strbuf_printf(&code, "x%d = %d\n", i, i);
    render *r = render_new(2000, 0, 3);
    render_code(r, "python", code.data);
    render_phase(r, RENDER_RUNNING, NULL, 0);
    render_output(r, 1, "result\n", 7);
    render_error(r, "MemoryError", "");
    char *t = text(r, 0);
    check_limits(t, 2000, 0);
    check_fences(t);
    CHECK(strstr(t, "```python\nx0 = 0\nx1 = 1\n"));
    CHECK(strstr(t, "\nx4999 = 4999\n```\n🚀"));
    const char *m = strstr(t, "\n… ");
    CHECK(m);
    unsigned long long omitted = strtoull(m + strlen("\n… "), NULL, 10);
    CHECK(strstr(m, " lines …\n"));
    /* head lines + omitted + tail lines = every line */
    int shown = 0;
    for (const char *p = strstr(t, "```python\n"); p && p < strstr(t, "\n```\n🚀"); p++)
        shown += p[0] == '\n' && p[1] == 'x';
    CHECK_INT(shown + (long long)omitted, 5000);
    CHECK(strstr(t, "```\nresult\n```\n❌ Error: MemoryError: "));
    free(t);
    /* one endless line */
    strbuf_reset(&code);
    for (int i = 0; i < 20000; i++)
        strbuf_puts(&code, "é");
    render_code(r, "python", code.data);
    t = text(r, 0);
    check_limits(t, 2000, 0);
    check_fences(t);
    CHECK(strstr(t, "```python\néé"));
    CHECK(strstr(t, "é…\n… 1 lines …\n```"));
    free(t);
    strbuf_free(&code);
    render_free(r);
}

/* Builds one of many states: phases, attempts, big and small parts. */
static render *state(size_t mc, size_t mb, int variant)
{
    render *r = render_new(mc, mb, 3);
    CHECK(r != NULL);
    strbuf big = {0};
    for (int i = 0; i < (variant % 3 == 0 ? 400 : 4); i++)
        strbuf_printf(&big, "value_%d = compute(%d)  # 日本語 😀\n", i, i);
    if (variant & 1) {
        render_code(r, "python", "print(x)");
        render_phase(r, RENDER_RUNNING, NULL, 0);
        render_error(r, "NameError", "name 'x' is not defined");
        render_attempt(r, 2);
    }
    if (variant & 2) {
        render_attempt(r, 3);
        render_error(r, "VeryLongError", big.data); /* a huge one-liner */
    }
    render_code(r, "python", big.data);
    render_phase(r, (enum render_phase)(variant % 6), variant & 4 ? "detail ``` 😀" : NULL, 0);
    for (int i = 0; i < (variant & 8 ? 800 : 3); i++) {
        char line[64];
        int n = snprintf(line, sizeof(line), "%s%d 😀 e\xCC\x81\n", i % 3 ? "out " : "\r", i);
        render_output(r, 1 + (i % 4 == 0), line, (size_t)n);
    }
    if (variant & 16)
        for (int i = 0; i < 40; i++)
            render_note(r, "📎 fibonacci.png");
    strbuf_free(&big);
    return r;
}

static void check_sizes(const size_t *chars, size_t nc)
{
    size_t bytes[] = {0, 1, 7, 100, 300, 512, 2000, 65536};
    for (size_t ci = 0; ci < nc; ci++) {
        for (size_t bi = 0; bi < sizeof(bytes) / sizeof(bytes[0]); bi++) {
            for (int v = 0; v < 32; v++) {
                render *r = state(chars[ci], bytes[bi], v);
                char *t = text(r, 123456);
                check_limits(t, chars[ci], bytes[bi]);
                int roomy = chars[ci] >= 200 && (bytes[bi] == 0 || bytes[bi] >= 300);
                if (roomy) {
                    check_fences(t);
                    /* the status line survives whatever else had to go */
                    const char *status[] = {"Writing code", "⏳",      "Running", "Done.",
                                            "Failed after", "Stopped"};
                    CHECK(strstr(t, status[v % 6]));
                }
                free(t);
                render_free(r);
            }
        }
    }
}

TEST(limits_hold_for_tiny_sizes_in_every_state)
{
    size_t chars[] = {1, 2, 5, 17};
    check_sizes(chars, sizeof(chars) / sizeof(chars[0]));
}

TEST(limits_hold_for_cramped_sizes_in_every_state)
{
    size_t chars[] = {40, 100, 150};
    check_sizes(chars, sizeof(chars) / sizeof(chars[0]));
}

TEST(limits_hold_for_small_sizes_in_every_state)
{
    size_t chars[] = {200, 257, 400};
    check_sizes(chars, sizeof(chars) / sizeof(chars[0]));
}

TEST(limits_hold_for_large_sizes_in_every_state)
{
    size_t chars[] = {1000, 2000, 4000, 40000};
    check_sizes(chars, sizeof(chars) / sizeof(chars[0]));
}

TEST(roomy_limits_use_the_room)
{
    /* with 2000 code points, output fills what code, status and error leave */
    render *r = state(2000, 0, 9);
    char *t = text(r, 0);
    check_limits(t, 2000, 0);
    CHECK(cps(t) > 1900);
    CHECK(strstr(t, "out 799 😀"));
    CHECK(strstr(t, "earlier lines not shown"));
    CHECK(strstr(t, "❌ Attempt 1/3: NameError: name 'x' is not defined"));
    free(t);
    render_free(r);
}

TEST(notes_follow_the_output)
{
    render *r = render_new(2000, 0, 3);
    render_phase(r, RENDER_DONE, NULL, 0);
    render_output(r, 1, "Chart saved to fibonacci.png\n", 29);
    render_note(r, "📎 fibonacci.png");
    render_note(r, "sandbox restarted:\nstate lost");
    char *t = text(r, 0);
    CHECK_STR(t, "✅ Done.\n```\nChart saved to fibonacci.png\n```\n📎 fibonacci.png\nsandbox "
                 "restarted: state lost");
    free(t);
    render_free(r);
}
