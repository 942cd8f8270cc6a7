/* The chat page served at / and /index.html: src/server/chat_page.html, compiled into the binary
 * by cmake/embed_file.cmake (the bytes live in the build tree's generated/chat_page.c). */
#ifndef SGLC_SERVER_CHAT_PAGE_H
#define SGLC_SERVER_CHAT_PAGE_H

#include <stddef.h>

extern const char sglc_chat_page[]; /* NUL-terminated, though the length below is what counts */
extern const size_t sglc_chat_page_len;

#endif
