/* curl_api — the dlopen/dlsym table behind bot/curl_api.h. Single-threaded like the bot:
 * the first http_client_new loads it, later calls find it loaded. */
#include "bot/curl_api.h"

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

#include "common/log.h"

/* The header's macros would rename the names we look up. */
#undef curl_global_init

curl_api curl_fn;

static const struct {
    const char *name;
    size_t offset;
} symbols[] = {
    {"curl_global_init", offsetof(curl_api, global_init)},
    {"curl_easy_init", offsetof(curl_api, easy_init)},
    {"curl_easy_cleanup", offsetof(curl_api, easy_cleanup)},
    {"curl_easy_setopt", offsetof(curl_api, easy_setopt)},
    {"curl_easy_getinfo", offsetof(curl_api, easy_getinfo)},
    {"curl_easy_strerror", offsetof(curl_api, easy_strerror)},
    {"curl_multi_init", offsetof(curl_api, multi_init)},
    {"curl_multi_cleanup", offsetof(curl_api, multi_cleanup)},
    {"curl_multi_add_handle", offsetof(curl_api, multi_add_handle)},
    {"curl_multi_remove_handle", offsetof(curl_api, multi_remove_handle)},
    {"curl_multi_setopt", offsetof(curl_api, multi_setopt)},
    {"curl_multi_assign", offsetof(curl_api, multi_assign)},
    {"curl_multi_socket_action", offsetof(curl_api, multi_socket_action)},
    {"curl_multi_info_read", offsetof(curl_api, multi_info_read)},
    {"curl_multi_strerror", offsetof(curl_api, multi_strerror)},
    {"curl_slist_append", offsetof(curl_api, slist_append)},
    {"curl_slist_free_all", offsetof(curl_api, slist_free_all)},
    {"curl_getdate", offsetof(curl_api, getdate)},
};

int curl_api_load(void)
{
    static int state; /* 0 not tried, 1 loaded, <0 the error */
    if (state)
        return state > 0 ? 0 : state;
    /* Kept open for the life of the process, as libcurl expects. */
    void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        log_error("http", "cannot load libcurl (install libcurl4): %s", dlerror());
        return state = -ENOENT;
    }
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        void *f = dlsym(lib, symbols[i].name);
        if (!f) {
            log_error("http", "libcurl lacks %s", symbols[i].name);
            return state = -ENOENT;
        }
        /* POSIX guarantees a data pointer from dlsym converts to a function pointer. */
        *(void **)((char *)&curl_fn + symbols[i].offset) = f;
    }
    if (curl_fn.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("http", "libcurl failed to initialise");
        return state = -EIO;
    }
    state = 1;
    return 0;
}
