/* turn — the orchestrator of one message. It is a small state machine driven by callbacks:
 *
 *   load (history + sandbox id, in parallel) -> attempt: generate -> run -> end
 *      end ok                 -> done, history saved
 *      end error, attempts left and an LLM -> the next attempt, traceback given back
 *      otherwise              -> failed, history saved (the seed keeps failures too)
 *
 * Every asynchronous operation the turn starts is counted in `pending`; the turn finishes
 * (DONE, then free) only when it has decided its outcome and `pending` is back to zero, so
 * no callback can ever reach a freed turn. */
#include "bot/turn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bot/codeblock.h"
#include "bot/live.h"
#include "bot/prompt.h"
#include "common/base64.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "sandbox/client.h"

#define HISTORY_OUTPUT_MAX 4000 /* output characters kept for the model per turn */

struct turn {
    turn_ctx ctx;
    adapter *ad;
    char *platform, *channel, *text, *reply_to, *session;
    live *lv;
    turn_done_cb done;
    void *ud;

    int direct; /* a fenced block from the user: run as is, no LLM */
    char *lang;
    int attempt, max_attempts;
    store_turn *hist; /* copied history, oldest first */
    size_t n_hist;
    char *sandbox_id; /* as stored for the channel, or learnt from the service */

    strbuf raw;      /* the model's answer in this attempt */
    char *code;      /* the code of this attempt */
    strbuf output;   /* what the run printed (tail kept for history) */
    char *error;     /* "Name: value\ntraceback" of the last failed attempt */
    char *prev_code; /* the code that failed, shown to the model on the next attempt */

    llm_call *call;
    sbx_run *run;
    unsigned figures;
    struct artifact *artifacts; /* this attempt's figures and files, sent if it is the last */
    int service_restarted;      /* the sandbox service was started again for this turn */
    struct upfile *files;       /* attachments to put into the working directory */
    size_t n_files, n_unfetched;
    uv_work_t ensure_work;
    int ensure_rc;
    int pending; /* operations started and not answered yet */
    int loads;   /* history and sandbox-id loads not answered yet */
    int cancelled;
    int decided; /* outcome chosen: no new operations start */
};

typedef struct upfile {
    struct turn *t;
    char *name;
    void *data;
    size_t size;
} upfile;

typedef struct artifact {
    struct artifact *next;
    char *name, *mime;
    char *b64; /* a figure's data, or NULL for a file to fetch by name */
} artifact;

static void next_attempt(turn *t);
static void run_code(turn *t);

char *turn_session_key(const char *platform, const char *channel)
{
    strbuf b = {0};
    if (strbuf_printf(&b, "%s:%s", platform, channel)) {
        strbuf_free(&b);
        return NULL;
    }
    return strbuf_steal(&b);
}

static void drop_artifacts(turn *t)
{
    while (t->artifacts) {
        artifact *a = t->artifacts;
        t->artifacts = a->next;
        free(a->name);
        free(a->mime);
        free(a->b64);
        free(a);
    }
}

static void turn_free(turn *t)
{
    drop_artifacts(t);
    for (size_t i = 0; i < t->n_files; i++) {
        free(t->files[i].name);
        free(t->files[i].data);
    }
    free(t->files);
    for (size_t i = 0; i < t->n_hist; i++) {
        free((char *)t->hist[i].role);
        free((char *)t->hist[i].content);
    }
    free(t->hist);
    free(t->platform);
    free(t->channel);
    free(t->text);
    free(t->reply_to);
    free(t->session);
    free(t->lang);
    free(t->sandbox_id);
    free(t->code);
    free(t->error);
    free(t->prev_code);
    strbuf_free(&t->raw);
    strbuf_free(&t->output);
    free(t);
}

/* The turn ends when it decided and nothing is outstanding. Only release() calls this, as
 * the last statement of a callback, so no code runs on a turn after it was freed: each
 * operation's count holds the turn while its own callback runs. */
static void settle(turn *t)
{
    if (!t->decided || t->pending > 0)
        return;
    t->pending = -1; /* never again */
    turn_done_cb done = t->done;
    void *ud = t->ud;
    done(ud, t);
    turn_free(t);
}

static void release(turn *t)
{
    t->pending--;
    settle(t);
}

static void on_live_finished(void *ud)
{
    release(ud);
}

static void on_store_written(void *ud, int status)
{
    turn *t = ud;
    if (status < 0)
        log_debug("turn", "%s: not saved (%s)", t->session, strerror(-status));
    release(t);
}

static void save_history(turn *t, int ok)
{
    if (!t->ctx.st || !t->code)
        return;
    char *entry = prompt_history_entry(t->lang, t->code, ok, strbuf_str(&t->output), t->error);
    if (!entry)
        return;
    if (store_history_append(t->ctx.st, t->platform, t->channel, t->text, entry, on_store_written,
                             t) == 0)
        t->pending++;
    free(entry);
}

/* The outcome is known: show the final state, save history (SAVE), and settle. */
static void decide(turn *t, enum render_phase phase, const char *detail, int save, int ok)
{
    if (t->decided)
        return;
    t->decided = 1;
    live_phase(t->lv, phase, detail);
    if (save)
        save_history(t, ok);
    t->pending++;
    live_finish(t->lv, on_live_finished, t);
}

static void keep_output(turn *t, const char *text, size_t len)
{
    strbuf_append(&t->output, text, len);
    if (t->output.len > 2 * HISTORY_OUTPUT_MAX)
        strbuf_consume(&t->output, t->output.len - HISTORY_OUTPUT_MAX);
}

/* ---- uploads: figures and files the run produced ---- */

static void on_uploaded(void *ud, const adapter_result *res)
{
    turn *t = ud;
    if (res->status || res->error)
        log_warn("turn", "%s: upload failed: %s", t->session, res->error ? res->error : "");
    release(t);
}

static void upload_b64(turn *t, const char *name, const char *mime, const char *b64)
{
    strbuf bin = {0};
    if (base64_decode(&bin, b64, strlen(b64)) != 0) {
        strbuf_free(&bin);
        return;
    }
    size_t max = t->ad->policy.max_upload_bytes;
    if (max && bin.len > max) {
        char note[256];
        snprintf(note, sizeof note, "📎 %s is too big to upload here (%zu bytes)", name, bin.len);
        live_note(t->lv, note);
    } else if (t->ad->ops->upload(t->ad, t->channel, name, mime, bin.data, bin.len, on_uploaded,
                                  t) == 0) {
        t->pending++;
    }
    strbuf_free(&bin);
}

typedef struct file_fetch {
    turn *t;
    char *path;
} file_fetch;

static void on_file_fetched(void *ud, const cJSON *reply, const char *error)
{
    file_fetch *f = ud;
    turn *t = f->t;
    const cJSON *data = reply ? cJSON_GetObjectItemCaseSensitive(reply, "data") : NULL;
    if (cJSON_IsString(data))
        upload_b64(t, f->path, "application/octet-stream", data->valuestring);
    else
        log_warn("turn", "%s: could not fetch %s: %s", t->session, f->path,
                 error ? error : "no data");
    free(f->path);
    free(f);
    release(t);
}

static void fetch_file(turn *t, const char *path);

/* Keeps a figure (B64 set) or a file (B64 NULL) of this attempt, in the order they came. */
static void add_artifact(turn *t, const char *name, const char *mime, const char *b64)
{
    artifact *a = calloc(1, sizeof *a), **tail = &t->artifacts;
    if (!a || !(a->name = strdup(name)) || !(a->mime = strdup(mime)) ||
        (b64 && !(a->b64 = strdup(b64)))) {
        if (a) {
            free(a->name);
            free(a->mime);
            free(a);
        }
        return;
    }
    while (*tail)
        tail = &(*tail)->next;
    *tail = a;
}

/* The attempt that produced them is the last one: send its figures and files. A failed
 * attempt that will be retried sends nothing, so a channel sees one set of results. */
static void send_artifacts(turn *t)
{
    for (artifact *a = t->artifacts; a; a = a->next) {
        if (a->b64)
            upload_b64(t, a->name, a->mime, a->b64);
        else
            fetch_file(t, a->name);
    }
    drop_artifacts(t);
}

static void fetch_file(turn *t, const char *path)
{
    file_fetch *f = calloc(1, sizeof *f);
    cJSON *req = cJSON_CreateObject();
    if (!f || !req || !(f->path = strdup(path))) {
        free(f);
        cJSON_Delete(req);
        return;
    }
    f->t = t;
    cJSON_AddStringToObject(req, "op", "get_file");
    cJSON_AddStringToObject(req, "session", t->session);
    cJSON_AddStringToObject(req, "path", path);
    if (sbx_request(t->ctx.loop, req, on_file_fetched, f) == 0) {
        t->pending++;
    } else {
        free(f->path);
        free(f);
    }
    cJSON_Delete(req);
}

/* ---- running ---- */

static void on_run_start(void *ud, const char *sandbox_id, int is_new)
{
    turn *t = ud;
    if (is_new && t->sandbox_id && strcmp(t->sandbox_id, sandbox_id) != 0)
        live_note(t->lv, "🆕 A new sandbox was started: variables and files from before are gone.");
    if (!t->sandbox_id || strcmp(t->sandbox_id, sandbox_id) != 0) {
        free(t->sandbox_id);
        t->sandbox_id = strdup(sandbox_id);
        char host[256] = "localhost";
        gethostname(host, sizeof host - 1);
        if (t->ctx.st && store_sandbox_set(t->ctx.st, t->platform, t->channel, sandbox_id, host,
                                           on_store_written, t) == 0)
            t->pending++;
    }
}

static void on_run_output(void *ud, int stream, const char *text, size_t len)
{
    turn *t = ud;
    live_output(t->lv, stream, text, len);
    keep_output(t, text, len);
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void set_error(turn *t, const char *name, const char *value, const char *tb)
{
    strbuf b = {0};
    strbuf_printf(&b, "%s: %s", name ? name : "Error", value ? value : "");
    if (tb && *tb)
        strbuf_printf(&b, "\n%s", tb);
    free(t->error);
    t->error = strbuf_steal(&b);
    live_error(t->lv, name ? name : "Error", value ? value : "");
}

static void on_run_event(void *ud, const char *ev, const cJSON *obj)
{
    turn *t = ud;
    const char *mime = json_str(obj, "mime");
    const char *data = json_str(obj, "data");
    if (strcmp(ev, "result") == 0 && mime && data) {
        if (strcmp(mime, "text/plain") == 0) {
            live_output(t->lv, 1, data, strlen(data));
            live_output(t->lv, 1, "\n", 1);
            keep_output(t, data, strlen(data));
            keep_output(t, "\n", 1);
        } else if (strcmp(mime, "image/png") == 0) {
            char name[64];
            snprintf(name, sizeof name, "figure-%u.png", ++t->figures);
            add_artifact(t, name, mime, data);
        }
    } else if (strcmp(ev, "file") == 0 && json_str(obj, "path")) {
        add_artifact(t, json_str(obj, "path"), "application/octet-stream", NULL);
    } else if (strcmp(ev, "error") == 0) {
        set_error(t, json_str(obj, "name"), json_str(obj, "value"), json_str(obj, "traceback"));
    }
}

/* The attempt failed: another one when the model can fix it, else the turn failed (the
 * renderer says after how many attempts). */
static void fail_attempt(turn *t)
{
    if (t->cancelled) {
        decide(t, RENDER_STOPPED, "cancelled", 0, 0);
    } else if (!t->direct && t->ctx.llm && t->attempt < t->max_attempts) {
        drop_artifacts(t);
        next_attempt(t);
    } else {
        send_artifacts(t);
        decide(t, RENDER_FAILED, NULL, 1, 0);
    }
}

/* The error name shown for a run that ended without an error event of its own. */
static const char *status_error_name(const char *status)
{
    static const char *const names[][2] = {{"timeout", "Timeout"},
                                           {"limit", "ResourceLimit"},
                                           {"crashed", "Crashed"},
                                           {"killed", "Killed"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(status, names[i][0]) == 0)
            return names[i][1];
    return "Error";
}

/* The sandbox service did not answer: start it again (blocking, so in the thread pool) and
 * run the code once more. Its sandboxes died with it, so the state is gone. */
static void ensure_in_pool(uv_work_t *w)
{
    turn *t = w->data;
    t->ensure_rc = sbx_ensure_service(15000);
}

static void ensure_done(uv_work_t *w, int status)
{
    turn *t = w->data;
    if (t->cancelled) {
        decide(t, RENDER_STOPPED, "cancelled", 0, 0);
    } else if (status != 0 || t->ensure_rc != 0) {
        char detail[160];
        snprintf(detail, sizeof detail,
                 "the sandbox service is not running and could not be "
                 "started (%s)",
                 strerror(-(status ? status : t->ensure_rc)));
        decide(t, RENDER_STOPPED, detail, 0, 0);
    } else {
        run_code(t);
    }
    release(t);
}

static void restart_service(turn *t)
{
    t->service_restarted = 1;
    log_warn("turn", "%s: the sandbox service did not answer; starting it", t->session);
    live_note(t->lv, "⚠️ The sandbox service was restarted.");
    t->ensure_work.data = t;
    if (uv_queue_work(t->ctx.loop, &t->ensure_work, ensure_in_pool, ensure_done) == 0)
        t->pending++;
    else
        decide(t, RENDER_STOPPED, "the sandbox service is not running", 0, 0);
}

static void on_run_end(void *ud, const sbx_end *end)
{
    turn *t = ud;
    t->run = NULL;
    if (end->state_lost)
        live_note(t->lv, "⚠️ The sandbox was restarted: variables from before are gone.");
    if (t->cancelled) {
        decide(t, RENDER_STOPPED, "cancelled", 0, 0);
    } else if (end->ok) {
        send_artifacts(t);
        char detail[64];
        snprintf(detail, sizeof detail, "%.1f s", (double)end->duration_ms / 1000.0);
        decide(t, RENDER_DONE, detail, 1, 1);
    } else if (strcmp(end->status, "sandbox_error") == 0 && !t->service_restarted) {
        restart_service(t);
    } else if (strcmp(end->status, "sandbox_error") == 0) {
        char detail[512];
        snprintf(detail, sizeof detail, "the sandbox failed: %s",
                 end->message ? end->message : "unknown error");
        decide(t, RENDER_STOPPED, detail, 0, 0);
    } else {
        if (!t->error || strcmp(end->status, "error") != 0)
            set_error(t, status_error_name(end->status), end->message ? end->message : end->status,
                      NULL);
        fail_attempt(t);
    }
    release(t);
}

static void run_code(turn *t)
{
    free(t->error);
    t->error = NULL;
    live_phase(t->lv, RENDER_RUNNING, NULL);
    sbx_run_opts o = {.session = t->session,
                      .lang = t->lang,
                      .code = t->code,
                      .timeout_ms = t->ctx.cfg->run_timeout_ms,
                      .sandbox_id = t->sandbox_id};
    static const sbx_run_cbs cbs = {on_run_start, on_run_output, on_run_event, on_run_end};
    int rc = sbx_run_start(t->ctx.loop, &o, &cbs, t, &t->run);
    if (rc) {
        char detail[160];
        snprintf(detail, sizeof detail, "the sandbox service is unreachable (%s)", strerror(-rc));
        decide(t, RENDER_STOPPED, detail, 0, 0);
        return;
    }
    t->pending++;
}

/* ---- generating ---- */

static void on_llm_text(void *ud, const char *text, size_t len)
{
    turn *t = ud;
    strbuf_append(&t->raw, text, len);
    char *code = codeblock_extract(t->raw.data, t->raw.len, NULL);
    if (code)
        live_code(t->lv, t->lang, code);
    free(code);
}

static void on_llm_wait(void *ud, int attempt, double seconds, int status)
{
    turn *t = ud;
    char detail[160];
    snprintf(detail, sizeof detail, "The model is busy (HTTP %d); retrying in %.0f s (retry %d)",
             status, seconds < 1 ? 1 : seconds, attempt);
    live_phase(t->lv, RENDER_WAITING, detail);
}

static void on_llm_done(void *ud, const llm_result *res)
{
    turn *t = ud;
    t->call = NULL;
    if (t->cancelled) {
        decide(t, RENDER_STOPPED, "cancelled", 0, 0);
    } else if (res->status != LLM_OK) {
        decide(t, RENDER_STOPPED, res->message ? res->message : "the model call failed", 0, 0);
    } else {
        free(t->code);
        t->code = codeblock_extract(strbuf_str(&t->raw), t->raw.len, NULL);
        if (!t->code || !*t->code) {
            set_error(t, "NoCode", "the model answered without any code", NULL);
            fail_attempt(t);
        } else {
            live_code(t->lv, t->lang, t->code);
            run_code(t);
        }
    }
    release(t);
}

/* History + this task (+ the failed code and its error on a later attempt). */
static int build_messages(turn *t, llm_msg **out, size_t *n, char **fix)
{
    llm_msg *m = calloc(t->n_hist + 3, sizeof *m);
    if (!m)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < t->n_hist; i++)
        m[k++] = (llm_msg){t->hist[i].role, t->hist[i].content};
    m[k++] = (llm_msg){"user", t->text};
    *fix = NULL;
    if (t->attempt > 1 && t->prev_code && t->error) {
        *fix = prompt_fix_request(t->error);
        if (!*fix) {
            free(m);
            return -ENOMEM;
        }
        m[k++] = (llm_msg){"assistant", t->prev_code};
        m[k++] = (llm_msg){"user", *fix};
    }
    *out = m;
    *n = k;
    return 0;
}

static void generate(turn *t)
{
    live_phase(t->lv, RENDER_GENERATING, NULL);
    strbuf_reset(&t->raw);
    llm_msg *msgs;
    size_t n;
    char *fix;
    char *system = prompt_system(t->lang);
    int rc = system ? build_messages(t, &msgs, &n, &fix) : -ENOMEM;
    if (rc == 0) {
        llm_request req = {.system = system, .messages = msgs, .n_messages = n};
        static const llm_callbacks cbs = {on_llm_text, on_llm_wait, on_llm_done};
        rc = llm_generate(t->ctx.llm, &req, &cbs, t, &t->call);
        free(msgs);
        free(fix);
    }
    free(system);
    if (rc) {
        decide(t, RENDER_STOPPED, "could not reach the model", 0, 0);
        return;
    }
    t->pending++;
}

static void next_attempt(turn *t)
{
    t->attempt++;
    if (t->attempt > 1) {
        free(t->prev_code);
        t->prev_code = t->code;
        t->code = NULL;
        strbuf_reset(&t->output);
    }
    live_attempt(t->lv, t->attempt);
    if (t->direct)
        run_code(t);
    else
        generate(t);
}

/* ---- loading history and the sandbox id ---- */

/* Each load holds one count, and begin() one more until both loads were asked for; the
 * last of them to answer starts the first attempt. */
static void loaded(turn *t)
{
    if (--t->loads == 0) {
        if (t->cancelled)
            decide(t, RENDER_STOPPED, "cancelled", 0, 0);
        else
            next_attempt(t);
    }
}

static void on_load_answered(turn *t)
{
    loaded(t);
    release(t);
}

static void on_history(void *ud, int status, const store_history *h)
{
    turn *t = ud;
    if (status == 0 && h && h->n_turns) {
        t->hist = calloc(h->n_turns, sizeof *t->hist);
        for (size_t i = 0; t->hist && i < h->n_turns; i++) {
            t->hist[i].role = strdup(h->turns[i].role);
            t->hist[i].content = strdup(h->turns[i].content);
            t->n_hist = i + 1;
            if (!t->hist[i].role || !t->hist[i].content)
                break;
        }
    }
    on_load_answered(t);
}

static void on_sandbox_id(void *ud, int status, const char *value)
{
    turn *t = ud;
    if (status == 0 && value && *value)
        t->sandbox_id = strdup(value);
    on_load_answered(t);
}

/* A file name for the working directory: the last path component, no control characters,
 * never empty, "." or "..". */
static char *safe_name(const char *name, size_t index)
{
    const char *base = name ? name : "";
    for (const char *p = base; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    strbuf b = {0};
    for (const char *p = base; *p && b.len < 200; p++)
        strbuf_append(&b, (unsigned char)*p < 0x20 || *p == 0x7f ? "_" : p, 1);
    if (!b.len || strcmp(strbuf_str(&b), ".") == 0 || strcmp(strbuf_str(&b), "..") == 0) {
        strbuf_reset(&b);
        strbuf_printf(&b, "attachment-%zu", index + 1);
    }
    return strbuf_steal(&b);
}

/* Attachments with data are kept to be put into the sandbox; the model is told their names
 * with the task (and so is the history: later turns know the files are there). */
static int copy_attachments(turn *t, const adapter_msg *m)
{
    if (!m->n_attachments)
        return 0;
    t->files = calloc(m->n_attachments, sizeof *t->files);
    if (!t->files)
        return -ENOMEM;
    strbuf names = {0};
    for (size_t i = 0; i < m->n_attachments; i++) {
        const adapter_attachment *a = &m->attachments[i];
        if (!a->data) {
            t->n_unfetched++;
            continue;
        }
        upfile *f = &t->files[t->n_files];
        f->t = t;
        f->name = safe_name(a->filename, i);
        f->data = malloc(a->size ? a->size : 1);
        if (!f->name || !f->data) {
            free(f->name);
            free(f->data);
            strbuf_free(&names);
            return -ENOMEM;
        }
        memcpy(f->data, a->data, a->size);
        f->size = a->size;
        t->n_files++;
        strbuf_printf(&names, "%s%s", names.len ? ", " : "", f->name);
    }
    if (names.len) {
        strbuf task = {0};
        strbuf_printf(&task, "%s\n\n(Attached files, saved in the working directory: %s)", t->text,
                      strbuf_str(&names));
        free(t->text);
        t->text = strbuf_steal(&task);
    }
    strbuf_free(&names);
    return t->text ? 0 : -ENOMEM;
}

static void on_file_put(void *ud, const cJSON *reply, const char *error)
{
    upfile *f = ud;
    turn *t = f->t;
    const cJSON *ok = reply ? cJSON_GetObjectItemCaseSensitive(reply, "ok") : NULL;
    const char *why = error ? error : reply ? json_str(reply, "error") : NULL;
    char note[512];
    if (cJSON_IsTrue(ok))
        snprintf(note, sizeof note, "📎 %s (%zu bytes) is in the working directory.", f->name,
                 f->size);
    else
        snprintf(note, sizeof note, "⚠️ %s could not be saved in the sandbox: %s", f->name,
                 why ? why : "no answer");
    live_note(t->lv, note);
    on_load_answered(t);
}

/* Puts the attachments into the working directory; the first attempt waits for them. */
static void put_files(turn *t)
{
    if (t->n_unfetched)
        live_note(t->lv, "⚠️ Some attachments could not be downloaded from the platform.");
    for (size_t i = 0; i < t->n_files; i++) {
        upfile *f = &t->files[i];
        strbuf b64 = {0};
        cJSON *req = cJSON_CreateObject();
        if (req && base64_encode(&b64, f->data, f->size) == 0) {
            cJSON_AddStringToObject(req, "op", "put_file");
            cJSON_AddStringToObject(req, "session", t->session);
            cJSON_AddStringToObject(req, "path", f->name);
            cJSON_AddStringToObject(req, "data", strbuf_str(&b64));
            t->loads++;
            t->pending++;
            if (sbx_request(t->ctx.loop, req, on_file_put, f) != 0) {
                t->loads--;
                t->pending--;
            }
        }
        cJSON_Delete(req);
        strbuf_free(&b64);
    }
}

static int copy_msg(turn *t, const adapter_msg *m)
{
    t->platform = strdup(m->platform);
    t->channel = strdup(m->channel);
    t->text = strdup(m->text);
    t->reply_to = m->msg_id ? strdup(m->msg_id) : NULL;
    t->session = turn_session_key(m->platform, m->channel);
    if (!t->platform || !t->channel || !t->text || !t->session)
        return -ENOMEM;
    return copy_attachments(t, m);
}

static int classify(turn *t, const char *text)
{
    char *code = NULL, *lang = NULL;
    int rc = codeblock_parse_message(text, &code, &lang);
    if (rc < 0)
        return rc;
    t->direct = rc == 1;
    t->code = code;
    t->lang = lang ? lang : strdup("python");
    if (lang && strcmp(lang, "python") && strcmp(lang, "bash") && strcmp(lang, "javascript")) {
        free(t->lang);
        t->lang = strdup("python");
    }
    t->max_attempts = t->direct ? 1 : t->ctx.cfg->max_attempts;
    return t->lang ? 0 : -ENOMEM;
}

static void begin(turn *t)
{
    if (!t->direct && !t->ctx.llm) {
        decide(t, RENDER_STOPPED,
               "No LLM is configured: set ANTHROPIC_API_KEY, or OPENAI_API_KEY / OPENAI_BASE_URL "
               "(see README). Fenced code blocks still run.",
               0, 0);
        return;
    }
    t->loads = 1;
    put_files(t);
    if (t->ctx.st) {
        t->loads += 2;
        t->pending += 2;
        if (store_history_load(t->ctx.st, t->platform, t->channel, on_history, t) != 0) {
            t->loads--;
            t->pending--;
        }
        if (store_sandbox_get(t->ctx.st, t->platform, t->channel, on_sandbox_id, t) != 0) {
            t->loads--;
            t->pending--;
        }
    }
    loaded(t);
}

int turn_start(const turn_ctx *ctx, adapter *a, const adapter_msg *m, turn_done_cb done, void *ud,
               turn **out)
{
    turn *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->ctx = *ctx;
    t->ad = a;
    t->done = done;
    t->ud = ud;
    int rc = copy_msg(t, m);
    if (rc == 0)
        rc = classify(t, m->text);
    if (rc == 0)
        rc = live_new(ctx->loop, a, t->channel, t->reply_to, t->max_attempts, &t->lv);
    if (rc) {
        turn_free(t);
        return rc;
    }
    if (t->direct)
        live_code(t->lv, t->lang, t->code);
    if (out)
        *out = t;
    t->pending = 1; /* held until turn_start returns */
    begin(t);
    release(t);
    return 0;
}

void turn_cancel(turn *t)
{
    if (t->cancelled || t->decided)
        return;
    t->cancelled = 1;
    if (t->call)
        llm_cancel(t->call);
    if (t->run)
        sbx_run_cancel(t->run);
}
