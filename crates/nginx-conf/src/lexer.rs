//! Tokens, as `ngx_conf_read_token` splits them.
