// Package boundedread reads a whole file or stream that the agent's operator hands it (a
// policy, a JWKS file, a config file, a task file) but never more than a limit, so a file that
// is far too large, a FIFO or a device that never ends cannot make the agent hold it all in
// memory. It reads only what it is given and decides nothing about its content; the caller
// names the file in its own words when it reports an error.
package boundedread
