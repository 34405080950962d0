#include "url.h"

#include <string.h>

int qpo_url_has_credentials(const char *url) {
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    /* The authority ends at the path, query or fragment; an '@' after that is only data. */
    size_t len = strcspn(auth, "/?#");
    return memchr(auth, '@', len) != NULL;
}
