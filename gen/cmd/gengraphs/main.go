// Command gengraphs writes the default SimCLR graphs and manifests
// (run through `go generate ./gen`).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/simclr-ort/simclr-ort/gen"
)

func main() {
	out := flag.String("out", "graphs", "directory to write the graphs into")
	flag.Parse()
	if err := gen.WriteDefault(*out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
