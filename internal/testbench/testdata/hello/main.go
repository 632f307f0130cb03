// Command hello is built by the tests of BuildBinary: it prints its
// arguments after "hello".
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	fmt.Println(strings.Join(append([]string{"hello"}, os.Args[1:]...), " "))
}
