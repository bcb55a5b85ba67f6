// Command ticker is a test helper the end-to-end tests allow as a SHELL command: it prints
// over time, "line N" every interval, or a file a few bytes at a time; with -until it then
// waits until a file exists, so a test can let it end once it saw what it waits for.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	n := flag.Int("n", 10, "lines to print")
	interval := flag.Duration("i", 200*time.Millisecond, "wait between two writes")
	file := flag.String("file", "", "print this file instead, chunk bytes per write")
	chunk := flag.Int("chunk", 3, "bytes per write with -file")
	until := flag.String("until", "", "after the output, wait until this file exists")
	flag.Parse()
	defer func() {
		for *until != "" {
			if _, err := os.Stat(*until); err == nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	if *file != "" {
		data, err := os.ReadFile(*file)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for len(data) > 0 {
			k := min(*chunk, len(data))
			_, _ = os.Stdout.Write(data[:k])
			data = data[k:]
			time.Sleep(*interval)
		}
		return
	}
	for i := 1; i <= *n; i++ {
		fmt.Printf("line %d\n", i)
		if i < *n {
			time.Sleep(*interval)
		}
	}
}
