//go:build race

package orchestratorsync_test

// raceEnabled scales the big inputs of the tests down under the race detector, which makes
// encoding/json many times slower.
const raceEnabled = true
