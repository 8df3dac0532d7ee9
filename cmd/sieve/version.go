package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sieve-data/sieve/pipelines"
)

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print sieve's version and the versions it is built with",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			beam := "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, d := range bi.Deps {
					if d.Path == "github.com/apache/beam/sdks/v2" {
						beam = d.Version
					}
				}
			}
			fmt.Fprintf(stdout, "sieve %s (Apache Beam Go SDK %s, %s %s/%s)\n", pipelines.Version, beam, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			// What content ids take the code to be (see docs/manifest.md).
			fmt.Fprintf(stdout, "build %s\n", strings.TrimSpace(strings.TrimPrefix(pipelines.CodeVersion(), pipelines.Version)))
			return nil
		},
	}
}
