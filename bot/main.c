/* main — the codebot binary: a table of commands, each one function that hands its
 * arguments (the command name first) to the module that implements it. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bot/app.h"
#include "sandbox/cli.h"
#include "sandbox/sandboxd.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} command;

static int cmd_sandboxd(int argc, char **argv)
{
    return cli_sandboxd(argc, argv);
}

static int cmd_exec(int argc, char **argv)
{
    return cli_exec(argc, argv);
}

static int cmd_sandbox(int argc, char **argv)
{
    return cli_sandbox(argc, argv);
}

static int cmd_console(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr,
                "usage: codebot console   (settings come from the environment, see README)\n");
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    return app_main(1);
}

static int cmd_run(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "usage: codebot run   (settings come from the environment, see README)\n");
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    return app_main(0);
}

static const command commands[] = {
    {"console", cmd_console, "the coding assistant in this terminal"},
    {"run", cmd_run, "the service: every adapter whose credentials are set"},
    {"exec", cmd_exec, "run code from stdin in a session's sandbox"},
    {"sandbox", cmd_sandbox, "ls | stats | kill ID | shutdown"},
    {"sandboxd", cmd_sandboxd, "the sandbox service (started on demand)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: codebot COMMAND [ARGS]   (codebot COMMAND --help for more)\n\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

/* A process started with fd 0, 1 or 2 closed would get its next socket or pipe there; libuv
 * refuses to close such fds and aborts. Closed standard fds point at /dev/null instead. */
static void keep_std_fds_open(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        int null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (null >= 0 && null != fd) {
            dup2(null, fd);
            close(null);
        }
    }
}

int main(int argc, char **argv)
{
    keep_std_fds_open();
    const char *name = argc > 1 ? argv[1] : NULL;
    if (!name) {
        usage(stderr);
        return 2;
    }
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0) {
        printf("codebot %s\n", CODEBOT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "codebot: unknown command '%s'\n", name);
    usage(stderr);
    return 2;
}
