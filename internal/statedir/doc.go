// Package statedir checks that the agent's state directory (its identity, token and journal)
// can only be changed by the agent's own user, before anything is read from it: the directory
// and its files belong to that user and are not group- or world-writable, and no directory
// above it lets another user swap it (only root, the agent's user, or a sticky directory owned
// by root such as /tmp, may own a writable parent). It only inspects; it never changes modes.
package statedir
