/* curl_api — libcurl, loaded with dlopen the first time an HTTP client is made.
 *
 * libcurl links some thirty shared libraries (TLS, HTTP/2, LDAP, Kerberos, ...); loading
 * them costs milliseconds at every process start. `codebot exec`, `codebot sandbox` and
 * `codebot sandboxd` never speak HTTP, and `exec` must start in a few milliseconds, so the
 * binary does not link libcurl: the modules that use it include this header instead of
 * <curl/curl.h> and call through a table that curl_api_load() fills. Same Debian package
 * (libcurl4), same API; only when it is loaded changes. Loaded once per process, never
 * unloaded; call curl_api_load() before any other curl function (http_client_new does). */
#ifndef CODEBOT_CURL_API_H
#define CODEBOT_CURL_API_H

/* Calls go through function pointers, which the type-checking macros cannot wrap. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

typedef struct curl_api {
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *h);
    CURLcode (*easy_setopt)(CURL *h, CURLoption opt, ...);
    CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
    const char *(*easy_strerror)(CURLcode code);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_cleanup)(CURLM *m);
    CURLMcode (*multi_add_handle)(CURLM *m, CURL *h);
    CURLMcode (*multi_remove_handle)(CURLM *m, CURL *h);
    CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
    CURLMcode (*multi_assign)(CURLM *m, curl_socket_t s, void *p);
    CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t s, int ev, int *running);
    CURLMsg *(*multi_info_read)(CURLM *m, int *left);
    const char *(*multi_strerror)(CURLMcode code);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
    time_t (*getdate)(const char *s, const time_t *unused);
} curl_api;

extern curl_api curl_fn;

/* Loads libcurl.so.4 and runs curl_global_init once. 0, or -ENOENT (logged once, with
 * dlerror's words) when the library or a symbol is missing, -EIO when it fails to init. */
int curl_api_load(void);

/* curl.h maps these to themselves (for its type checks); they become table calls here. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init curl_fn.global_init
#define curl_easy_init curl_fn.easy_init
#define curl_easy_cleanup curl_fn.easy_cleanup
#define curl_easy_setopt curl_fn.easy_setopt
#define curl_easy_getinfo curl_fn.easy_getinfo
#define curl_easy_strerror curl_fn.easy_strerror
#define curl_multi_init curl_fn.multi_init
#define curl_multi_cleanup curl_fn.multi_cleanup
#define curl_multi_add_handle curl_fn.multi_add_handle
#define curl_multi_remove_handle curl_fn.multi_remove_handle
#define curl_multi_setopt curl_fn.multi_setopt
#define curl_multi_assign curl_fn.multi_assign
#define curl_multi_socket_action curl_fn.multi_socket_action
#define curl_multi_info_read curl_fn.multi_info_read
#define curl_multi_strerror curl_fn.multi_strerror
#define curl_slist_append curl_fn.slist_append
#define curl_slist_free_all curl_fn.slist_free_all
#define curl_getdate curl_fn.getdate

#endif
