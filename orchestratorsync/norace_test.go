//go:build !race

package orchestratorsync_test

const raceEnabled = false
