// fuzz-sources: bot/codeblock.c
/* fuzz_codeblock — arbitrary text through both code finders: no crash, no overread, and
 * results that are well-formed (code within the input's size, language lower case). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bot/codeblock.h"

static void check_lang(const char *lang)
{
    for (const char *p = lang; p && *p; p++)
        if (isupper((unsigned char)*p))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *lang = NULL;
    char *code = codeblock_extract((const char *)data, size, &lang);
    if (!code || strlen(code) > size)
        abort();
    check_lang(lang);
    free(code);
    free(lang);

    char *msg = malloc(size + 1);
    if (!msg)
        return 0;
    memcpy(msg, data, size);
    msg[size] = '\0';
    char *c = NULL, *l = NULL;
    int rc = codeblock_parse_message(msg, &c, &l);
    if (rc == 1 && (!c || !*c || strlen(c) > size))
        abort();
    if (rc == 0 && (c || l))
        abort();
    check_lang(l);
    free(c);
    free(l);
    free(msg);
    return 0;
}
