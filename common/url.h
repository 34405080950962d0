#ifndef QPO_URL_H
#define QPO_URL_H

/* 1 when an http(s) URL carries user:password@ (or user@) in its authority. Such a URL ends
 * up in qpo.targets, in logs and on screens, so targets take keys from api_key_env or
 * api_key_file instead. */
int qpo_url_has_credentials(const char *url);

#endif
