/* sglc public API. Kept narrow so that front ends (CLI, HTTP server) do not depend on tensor
 * or backend internals. The engine API (submit / stream / abort / stats) arrives with issue 5. */
#ifndef SGLC_H
#define SGLC_H

#define SGLC_VERSION "0.1.0"

#endif
