/* Unit tests for bot/codeblock.c: code in model answers and in user messages. */
#include "tests/unit/check.h"

#include "bot/codeblock.h"

static void extract_is(const char *text, const char *code, const char *lang)
{
    char *l = (char *)1;
    char *c = codeblock_extract(text, strlen(text), &l);
    CHECK(c != NULL);
    CHECK_STR(c, code);
    if (lang)
        CHECK_STR(l, lang);
    else
        CHECK(l == NULL);
    free(c);
    free(l);
}

TEST(python_fence_with_prose_around)
{
    extract_is("Here is the code:\n\n```python\nimport os\n\nprint(os.getcwd())\n```\n\n"
               "It prints the directory.",
               "import os\n\nprint(os.getcwd())", "python");
}

TEST(tilde_fence)
{
    extract_is("~~~py\nx = 1\n~~~\n", "x = 1", "python");
}

TEST(no_fence_is_whole_text_trimmed)
{
    extract_is("\n\n  print(1)\nprint(2)\n\n  \n", "  print(1)\nprint(2)", NULL);
}

TEST(first_block_wins)
{
    extract_is("```bash\nls\n```\nthen\n```python\nprint(1)\n```", "ls", "bash");
}

TEST(unterminated_fence_while_streaming)
{
    extract_is("Sure.\n```python\nfor i in range(3):\n    print(i)\n",
               "for i in range(3):\n    print(i)", "python");
    /* The first backticks of the closing fence are not code. */
    extract_is("```python\nprint(1)\n``", "print(1)", "python");
    extract_is("```python\nprint(1)\n`", "print(1)", "python");
    /* Only the opening fence so far. */
    extract_is("Sure.\n```pyth", "", "pyth");
}

TEST(closing_fence_glued_to_last_line)
{
    extract_is("```python\nprint(1)```", "print(1)", "python");
}

TEST(longer_fence_contains_shorter)
{
    extract_is("````markdown\n```python\nx\n```\n````\n", "```python\nx\n```", "markdown");
}

TEST(closing_fence_must_match_char)
{
    extract_is("```\na\n~~~\nb\n```", "a\n~~~\nb", NULL);
}

TEST(indented_fence_and_crlf)
{
    extract_is("Steps:\r\n   ```JS\r\n   console.log(1)\r\n   ```\r\n", "   console.log(1)",
               "javascript");
}

TEST(language_aliases)
{
    extract_is("```sh\nls\n```", "ls", "bash");
    extract_is("```shell\nls\n```", "ls", "bash");
    extract_is("```node\n1\n```", "1", "javascript");
    extract_is("```Python3 title=x\n1\n```", "1", "python");
    extract_is("```{.ruby}\n1\n```", "1", "ruby");
}

TEST(empty_and_null_input)
{
    extract_is("", "", NULL);
    char *l = NULL;
    char *c = codeblock_extract(NULL, 0, &l);
    CHECK_STR(c, "");
    CHECK(l == NULL);
    free(c);
    c = codeblock_extract("abc", 3, NULL);
    CHECK_STR(c, "abc");
    free(c);
}

TEST(length_bounds_the_text)
{
    char *c = codeblock_extract("```py\nab\n```IGNORED", 12, NULL);
    CHECK_STR(c, "ab");
    free(c);
}

static void message_is(const char *msg, int want, const char *code, const char *lang)
{
    char *c = NULL, *l = NULL;
    CHECK_INT(codeblock_parse_message(msg, &c, &l), want);
    if (want == 1) {
        CHECK_STR(c, code);
        if (lang)
            CHECK_STR(l, lang);
        else
            CHECK(l == NULL);
    } else {
        CHECK(c == NULL && l == NULL);
    }
    free(c);
    free(l);
}

TEST(message_fenced_blocks)
{
    message_is("```python\nprint('hi')\n```", 1, "print('hi')", "python");
    message_is("  \n```bash\necho hi\n```\n ", 1, "echo hi", "bash");
    message_is("```sh\nls -l\n```", 1, "ls -l", "bash");
    message_is("```js\nconsole.log(1)\n```", 1, "console.log(1)", "javascript");
    message_is("```\nprint(1)\nprint(2)\n```", 1, "print(1)\nprint(2)", NULL);
    message_is("~~~py\nx\n~~~", 1, "x", "python");
}

TEST(message_slack_shapes)
{
    message_is("```print(1)```", 1, "print(1)", NULL);
    message_is("```x = 1\nprint(x)```", 1, "x = 1\nprint(x)", NULL);
    message_is("```python\nprint(2)```", 1, "print(2)", "python");
}

TEST(message_not_only_a_block)
{
    message_is("run this:\n```python\nprint(1)\n```", 0, NULL, NULL);
    message_is("```python\nprint(1)\n```\nthanks", 0, NULL, NULL);
    message_is("```a```\nand\n```b```", 0, NULL, NULL);
    message_is("print(1)", 0, NULL, NULL);
    message_is("``print(1)``", 0, NULL, NULL);
    message_is("```python\n```", 0, NULL, NULL);
    message_is("", 0, NULL, NULL);
    message_is("``````", 0, NULL, NULL);
}

TEST(message_keeps_indentation)
{
    message_is("```python\n\ndef f():\n    return 1\n\n```", 1, "def f():\n    return 1", "python");
}
