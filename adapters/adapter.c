/* adapter — what every adapter shares: copying a message so that it can wait in a queue.
 * One allocation per string; attachment data is copied byte for byte. */
#include "adapters/adapter.h"

#include <stdlib.h>
#include <string.h>

static int dup_str(const char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

static int dup_attachments(adapter_msg *c, const adapter_msg *m)
{
    if (!m->n_attachments)
        return 0;
    adapter_attachment *a = calloc(m->n_attachments, sizeof *a);
    if (!a)
        return -1;
    c->attachments = a;
    c->n_attachments = m->n_attachments;
    for (size_t i = 0; i < m->n_attachments; i++) {
        const adapter_attachment *s = &m->attachments[i];
        if (dup_str(&a[i].filename, s->filename) || dup_str(&a[i].mime, s->mime) ||
            dup_str(&a[i].url, s->url))
            return -1;
        a[i].size = s->size;
        if (s->data) {
            void *d = malloc(s->size ? s->size : 1);
            if (!d)
                return -1;
            memcpy(d, s->data, s->size);
            a[i].data = d;
        }
    }
    return 0;
}

adapter_msg *adapter_msg_dup(const adapter_msg *m)
{
    adapter_msg *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (dup_str(&c->platform, m->platform) || dup_str(&c->channel, m->channel) ||
        dup_str(&c->user, m->user) || dup_str(&c->text, m->text) ||
        dup_str(&c->msg_id, m->msg_id) || dup_str(&c->reply_to, m->reply_to) ||
        dup_attachments(c, m)) {
        adapter_msg_free(c);
        return NULL;
    }
    return c;
}

void adapter_msg_free(adapter_msg *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_attachments; i++) {
        adapter_attachment *a = (adapter_attachment *)&m->attachments[i];
        free((void *)a->filename);
        free((void *)a->mime);
        free((void *)a->url);
        free((void *)a->data);
    }
    free((void *)m->attachments);
    free((void *)m->platform);
    free((void *)m->channel);
    free((void *)m->user);
    free((void *)m->text);
    free((void *)m->msg_id);
    free((void *)m->reply_to);
    free(m);
}
