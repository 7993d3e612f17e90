/* Tests of the cgroup module on fake hierarchies (CODEBOT_SANDBOX_CGROUP_ROOT): the v2 and v1
 * file protocol, without needing either flavour on the test host. The real v1 path is
 * exercised by test_jail. */
#include "tests/unit/check.h"

#include "sandbox/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>

static char root[256];

static void put(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

static const char *get(const char *rel)
{
    static char buf[4096];
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "r");
    buf[0] = 0;
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
    }
    return buf;
}

static void dir(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    CHECK(mkdir(p, 0755) == 0 || errno == EEXIST);
}

static void cleanup(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
}

static void fake_root(void)
{
    snprintf(root, sizeof root, "/tmp/test-cgroup-%d", (int)getpid());
    CHECK(mkdir(root, 0755) == 0);
    setenv("CODEBOT_SANDBOX_CGROUP_ROOT", root, 1);
    unsetenv("CODEBOT_SANDBOX_CGROUP");
    unsetenv("CODEBOT_SANDBOX_CGROUPS");
}

/* The files the kernel would create in a new v2 group. */
static void fake_v2_group(const char *id)
{
    char p[256];
    snprintf(p, sizeof p, "codebot/%s", id);
    dir(p);
    static const char *const files[][2] = {
        {"memory.max", "max\n"},
        {"memory.swap.max", "max\n"},
        {"pids.max", "max\n"},
        {"cpu.max", "max 100000\n"},
        {"cgroup.procs", ""},
        {"cgroup.kill", ""},
        {"memory.current", "12345678\n"},
        {"cpu.stat", "usage_usec 2500000\nuser_usec 1\n"},
        {"memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"}};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char f[320];
        snprintf(f, sizeof f, "%s/%s", p, files[i][0]);
        put(f, files[i][1]);
    }
}

TEST(v2_create_attach_stats_oom)
{
    fake_root();
    put("cgroup.controllers", "cpuset cpu io memory pids\n");
    put("cgroup.subtree_control", "");
    dir("codebot");
    put("codebot/cgroup.subtree_control", "");
    fake_v2_group("s1");
    CHECK_INT(cgroup_init(), CGROUP_V2);
    CHECK(strstr(get("codebot/cgroup.subtree_control"), "+memory +pids") ||
          strstr(get("codebot/cgroup.subtree_control"), "+cpu"));
    CHECK_INT(cgroup_create("s1", 100 << 20, 32, 50), 0);
    CHECK_STR(get("codebot/s1/memory.max"), "104857600");
    CHECK_STR(get("codebot/s1/memory.swap.max"), "0");
    CHECK_STR(get("codebot/s1/pids.max"), "32");
    CHECK_STR(get("codebot/s1/cpu.max"), "50000 100000");
    CHECK_INT(cgroup_attach("s1", 4242), 0);
    CHECK_STR(get("codebot/s1/cgroup.procs"), "4242");
    uint64_t mem = 0, cpu = 0;
    CHECK_INT(cgroup_stats("s1", &mem, &cpu), 0);
    CHECK(mem == 12345678);
    CHECK(cpu == 2500);
    CHECK_INT(cgroup_oom_killed("s1"), 1);
    put("codebot/s1/cgroup.procs", "");
    cgroup_kill("s1");
    CHECK_STR(get("codebot/s1/cgroup.kill"), "1");
    CHECK_INT(cgroup_stats("nope", &mem, &cpu), -ENOENT);
    cleanup();
}

TEST(v1_create_attach_stats)
{
    fake_root();
    static const char *const hier[] = {"memory", "pids", "cpuacct", "cpu"};
    for (int i = 0; i < 4; i++) {
        char p[64];
        dir(hier[i]);
        snprintf(p, sizeof p, "%s/codebot", hier[i]);
        dir(p);
        snprintf(p, sizeof p, "%s/codebot/s1", hier[i]);
        dir(p);
        snprintf(p, sizeof p, "%s/codebot/s1/cgroup.procs", hier[i]);
        put(p, "");
    }
    put("memory/memory.limit_in_bytes", "");
    put("pids/cgroup.procs", "");
    put("cpuacct/cpuacct.usage", "");
    put("cpu/cpu.cfs_quota_us", "");
    put("memory/codebot/s1/memory.limit_in_bytes", "");
    put("memory/codebot/s1/memory.stat", "cache 1\nrss 2\ntotal_cache 1000\ntotal_rss 2000\n");
    put("memory/codebot/s1/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
    put("pids/codebot/s1/pids.max", "");
    put("cpuacct/codebot/s1/cpuacct.usage", "7000000\n");
    put("cpu/codebot/s1/cpu.cfs_quota_us", "");
    put("cpu/codebot/s1/cpu.cfs_period_us", "");
    CHECK_INT(cgroup_init(), CGROUP_V1);
    CHECK_INT(cgroup_create("s1", 1 << 20, 10, 200), 0);
    CHECK_STR(get("memory/codebot/s1/memory.limit_in_bytes"), "1048576");
    CHECK_STR(get("pids/codebot/s1/pids.max"), "10");
    CHECK_STR(get("cpu/codebot/s1/cpu.cfs_quota_us"), "200000");
    CHECK_INT(cgroup_attach("s1", 77), 0);
    CHECK_STR(get("pids/codebot/s1/cgroup.procs"), "77");
    CHECK_STR(get("cpuacct/codebot/s1/cgroup.procs"), "77");
    uint64_t mem = 0, cpu = 0;
    CHECK_INT(cgroup_stats("s1", &mem, &cpu), 0);
    CHECK(mem == 3000);
    CHECK(cpu == 7);
    CHECK_INT(cgroup_oom_killed("s1"), 0);
    cleanup();
}

TEST(unsafe_ids_stay_inside_the_base)
{
    fake_root();
    put("cgroup.controllers", "memory pids\n");
    put("cgroup.subtree_control", "");
    dir("codebot");
    put("codebot/cgroup.subtree_control", "");
    CHECK_INT(cgroup_init(), CGROUP_V2);
    /* "../x" must not become a path outside the base: its group is a hash-named dir. */
    CHECK(cgroup_create("../x", 1 << 20, 4, 0) < 0); /* the fake has no memory.max there */
    char p[512];
    snprintf(p, sizeof p, "%s/x", root);
    CHECK(access(p, F_OK) < 0);
    cleanup();
}

TEST(off_means_none)
{
    fake_root();
    put("cgroup.controllers", "memory pids\n");
    setenv("CODEBOT_SANDBOX_CGROUPS", "off", 1);
    CHECK_INT(cgroup_init(), CGROUP_NONE);
    CHECK_INT(cgroup_create("a", 1, 1, 0), -ENOTSUP);
    CHECK_INT(cgroup_destroy("a"), -ENOTSUP);
    cleanup();
}
