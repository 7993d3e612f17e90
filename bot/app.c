/* app — start-up and shutdown order. Start: config, log, store (connects in the background),
 * LLM client, sandbox service, channels, adapters. Shutdown: cancel turns, wait for them (at
 * most a few seconds), flush Redis, stop adapters, close clients, close every handle left, so
 * that the loop ends by itself and valgrind sees nothing left. */
#include "bot/app.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/console.h"
#include "bot/channels.h"
#include "bot/config.h"
#include "bot/llm.h"
#include "common/log.h"
#include "sandbox/client.h"
#include "store/store.h"

#define SHUTDOWN_WAIT_MS 5000

typedef struct app {
    uv_loop_t *loop;
    config cfg;
    store *st;
    llm_client *llm;
    channels *cs;
    adapter *console;
    uv_signal_t sigterm, sigint;
    uv_timer_t shutdown_timer;
    uint64_t shutdown_deadline;
    int stopping;
    int adapters_open;
} app;

static void on_adapter_stopped(void *ud)
{
    app *a = ud;
    a->adapters_open--;
}

static void finish_shutdown(app *a)
{
    if (a->st) {
        store_flush(a->st, 2000);
        store_close(a->st);
        a->st = NULL;
    }
    if (a->llm) {
        llm_client_free(a->llm);
        a->llm = NULL;
    }
    if (a->console) {
        a->console->ops->stop(a->console, on_adapter_stopped, a);
    }
    uv_close((uv_handle_t *)&a->shutdown_timer, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    if (!uv_is_closing((uv_handle_t *)&a->sigint))
        uv_close((uv_handle_t *)&a->sigint, NULL);
}

static void on_shutdown_tick(uv_timer_t *t)
{
    app *a = t->data;
    if (channels_running(a->cs) > 0 && uv_now(a->loop) < a->shutdown_deadline)
        return;
    if (channels_running(a->cs) > 0)
        log_warn("app", "%d turn(s) did not stop in time", channels_running(a->cs));
    uv_timer_stop(t);
    finish_shutdown(a);
}

static void app_stop(void *ud)
{
    app *a = ud;
    if (a->stopping)
        return;
    a->stopping = 1;
    log_info("app", "shutting down");
    channels_cancel_all(a->cs);
    a->shutdown_deadline = uv_now(a->loop) + SHUTDOWN_WAIT_MS;
    uv_timer_start(&a->shutdown_timer, on_shutdown_tick, 0, 20);
}

static void on_signal(uv_signal_t *s, int signum)
{
    app *a = s->data;
    log_info("app", "signal %d", signum);
    app_stop(a);
}

static int open_clients(app *a)
{
    int rc;
    if (a->cfg.redis_url) {
        rc = store_open(a->loop, a->cfg.redis_url, a->cfg.history_budget, &a->st);
        if (rc) {
            fprintf(stderr, "codebot: REDIS_URL: cannot use '%s'\n", a->cfg.redis_url);
            return rc;
        }
    } else {
        log_warn("app", "REDIS_URL is not set: conversation history is not kept");
    }
    if (a->cfg.llm != LLM_NONE) {
        llm_config lc;
        config_llm(&a->cfg, &lc);
        if ((rc = llm_client_new(a->loop, &lc, &a->llm)) != 0) {
            fprintf(stderr, "codebot: cannot create the LLM client: %s\n", strerror(-rc));
            return rc;
        }
    }
    if ((rc = sbx_ensure_service(15000)) != 0)
        log_error("app", "the sandbox service is not available (%s); code cannot run until it is",
                  strerror(-rc));
    return 0;
}

/* The chat platforms join here as their adapters land (in `run` only); with no credentials
 * set the service has the console alone. */
static int open_adapters(app *a)
{
    int rc = console_new(a->loop, &a->console);
    if (rc) {
        fprintf(stderr, "codebot: cannot open the console: %s\n", uv_strerror(rc));
        return rc;
    }
    console_set_quit(a->console, app_stop, a);
    a->adapters_open++;
    return channels_attach(a->cs, a->console);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int app_main(int console_only)
{
    app a;
    memset(&a, 0, sizeof a);
    char err[512];
    if (log_init() != 0)
        return 2;
    if (config_load(&a.cfg, err, sizeof err) != 0) {
        fprintf(stderr, "codebot: %s\n", err);
        return 2;
    }
    if (console_only && !getenv("CODEBOT_LOG_LEVEL"))
        log_set_level(LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    a.loop = uv_default_loop();
    uv_timer_init(a.loop, &a.shutdown_timer);
    a.shutdown_timer.data = &a;
    uv_signal_init(a.loop, &a.sigterm);
    uv_signal_init(a.loop, &a.sigint);
    a.sigterm.data = a.sigint.data = &a;
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    if (!console_only)
        uv_signal_start(&a.sigint, on_signal, SIGINT);
    int rc = open_clients(&a);
    turn_ctx ctx = {.loop = a.loop, .cfg = &a.cfg, .st = a.st, .llm = a.llm};
    if (rc == 0)
        rc = channels_new(&ctx, &a.cs);
    if (rc == 0)
        rc = open_adapters(&a);
    if (rc) {
        if (a.cs)
            app_stop(&a);
        else
            finish_shutdown(&a);
    }
    uv_run(a.loop, UV_RUN_DEFAULT);
    uv_walk(a.loop, close_walk, NULL);
    uv_run(a.loop, UV_RUN_DEFAULT);
    if (a.console)
        a.console->ops->free(a.console);
    if (a.cs)
        channels_free(a.cs);
    uv_loop_close(a.loop);
    config_free(&a.cfg);
    log_close();
    return rc ? 1 : 0;
}
