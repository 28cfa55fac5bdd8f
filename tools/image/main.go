// Command image writes bin/ghostwatch-image.tar (make image): the static ghostwatch binaries in an
// OCI image archive, one manifest per architecture under one index, built with no registry and no
// container daemon. `ctr image import` stores it as ghostwatch:latest; it prints the digest.
//
//	go run ./tools/image -o bin/ghostwatch-image.tar -version V amd64=bin/linux-amd64/ghostwatch ...
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/ghostwatch/ghostwatch/tools/ociimage"
)

func main() {
	out := flag.String("o", "bin/ghostwatch-image.tar", "the archive to write")
	name := flag.String("name", "ghostwatch:latest", "the image's name")
	version := flag.String("version", "", "the version label (org.opencontainers.image.version)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: image [-o FILE] [-name NAME] [-version V] ARCH=BINARY...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	spec := ociimage.Spec{
		Name:       *name,
		Entrypoint: []string{"/usr/bin/ghostwatch"},
		Env:        []string{"PATH=/usr/bin"},
		Labels: map[string]string{
			"org.opencontainers.image.title":   "ghostwatch",
			"org.opencontainers.image.version": *version,
		},
	}
	for _, arg := range flag.Args() {
		arch, bin, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "image: %q: want ARCH=BINARY\n", arg)
			os.Exit(2)
		}
		spec.Platforms = append(spec.Platforms, ociimage.Platform{
			Arch:  arch,
			Files: []ociimage.File{{Path: "usr/bin/ghostwatch", Source: bin, Mode: 0o755}},
			Dirs:  []string{"tmp"},
		})
	}
	var buf bytes.Buffer
	digest, err := ociimage.Write(&buf, spec)
	if err == nil {
		err = os.WriteFile(*out, buf.Bytes(), 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s %s\n", *out, spec.Name, digest)
}
