// Command guest stands in for a test binary in the harness's own tests: "exit N" prints a line and
// exits with N; "hang" never ends.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	switch {
	case len(os.Args) == 3 && os.Args[1] == "exit":
		n, _ := strconv.Atoi(os.Args[2])
		fmt.Printf("guest: exiting with %d on purpose\n", n)
		os.Exit(n)
	case len(os.Args) == 2 && os.Args[1] == "hang":
		fmt.Println("guest: hanging on purpose")
		for { // select{} would be caught by the runtime's deadlock detector
			time.Sleep(time.Hour)
		}
	}
	fmt.Println("guest: usage: exit N | hang")
	os.Exit(2)
}
