/* codeblock — finds code in text: in a model's answer (fence stripped, prose dropped) and in
 * a user's message (a message that is a fenced block runs as is). Pure functions; results
 * are malloc'd and owned by the caller. */
#ifndef CODEBOT_CODEBLOCK_H
#define CODEBOT_CODEBLOCK_H
#include <stddef.h>

/* The code in a model's answer: the first fenced block's body when there is a fence (also an
 * unterminated one, as while streaming), else the whole text with surrounding blank lines
 * trimmed. *LANG (optional) gets the fence's language in lower case ("py" becomes "python",
 * "sh"/"shell" become "bash", "js"/"node" become "javascript"), or NULL. NULL on ENOMEM. */
char *codeblock_extract(const char *text, size_t len, char **lang);

/* 1 when MESSAGE is a fenced code block and nothing else (white space around is fine), with
 * *CODE and *LANG (normalised as above; NULL when the fence names none) set; 0 otherwise;
 * -ENOMEM. */
int codeblock_parse_message(const char *message, char **code, char **lang);

#endif
