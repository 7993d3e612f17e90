/* fake_llm.h — runs tests/fakes/fake_llm.py for a unit test: fake_start writes the script,
 * starts the fake (dying with the test process) and waits for its port; fake_requests reads
 * what it logged. Header-only, static: include it in one test file. Tests run from the
 * repository root. CODEBOT_PYTHON names the interpreter (default /usr/bin/python3, which has
 * Debian's python3-aiohttp). */
#ifndef CODEBOT_TEST_FAKE_LLM_H
#define CODEBOT_TEST_FAKE_LLM_H
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/check.h"

static struct fake {
    pid_t pid;
    int port;
    char dir[64];
    char log[96];
    char url[64]; /* http://127.0.0.1:PORT */
} fake;

static void fake_stop(void)
{
    if (fake.pid > 0) {
        kill(fake.pid, SIGTERM);
        waitpid(fake.pid, NULL, 0);
        fake.pid = 0;
    }
}

static const char *python(void)
{
    const char *p = getenv("CODEBOT_PYTHON");
    if (p && *p)
        return p;
    /* Debian's interpreter has python3-aiohttp even when another python3 comes first. */
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

static void write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(s, f);
    fclose(f);
}

/* Starts the fake with SCRIPT (a JSON list); KEY_ARG NULL means no --key. */
static void fake_start(const char *script, const char *key_arg)
{
    snprintf(fake.dir, sizeof fake.dir, "/tmp/test_llm.XXXXXX");
    CHECK(mkdtemp(fake.dir) != NULL);
    char script_path[96], port_path[96], err_path[96];
    snprintf(script_path, sizeof script_path, "%s/script.json", fake.dir);
    snprintf(port_path, sizeof port_path, "%s/port", fake.dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", fake.dir);
    snprintf(fake.log, sizeof fake.log, "%s/log.jsonl", fake.dir);
    write_file(script_path, script);
    atexit(fake_stop);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        const char *py = python();
        if (key_arg)
            execlp(py, py, "tests/fakes/fake_llm.py", "--port-file", port_path, "--script",
                   script_path, "--log", fake.log, "--key", key_arg, (char *)NULL);
        else
            execlp(py, py, "tests/fakes/fake_llm.py", "--port-file", port_path, "--script",
                   script_path, "--log", fake.log, (char *)NULL);
        _exit(127);
    }
    fake.pid = pid;
    for (int i = 0; i < 400; i++) {
        FILE *f = fopen(port_path, "r");
        if (f) {
            int ok = fscanf(f, "%d", &fake.port) == 1;
            fclose(f);
            if (ok)
                break;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fake.pid = 0;
            fprintf(stderr, "fake_llm.py exited early; see %s\n", err_path);
            CHECK(!"fake_llm.py started");
        }
        usleep(25000);
    }
    CHECK(fake.port > 0);
    snprintf(fake.url, sizeof fake.url, "http://127.0.0.1:%d", fake.port);
}

/* The fake's log: one JSON object per request. */
static cJSON *fake_requests(void)
{
    cJSON *arr = cJSON_CreateArray();
    FILE *f = fopen(fake.log, "r");
    if (!f)
        return arr;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *o = cJSON_Parse(line);
        CHECK(o != NULL);
        cJSON_AddItemToArray(arr, o);
    }
    free(line);
    fclose(f);
    return arr;
}

static const char *header(const cJSON *req, const char *name)
{
    const cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItem(req, "headers"))
    {
        if (strcasecmp(h->string, name) == 0)
            return h->valuestring;
    }
    return NULL;
}

#endif
