package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
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

func newPrismCmd(stderr io.Writer) *cobra.Command {
	var port int
	cmd := &cobra.Command{
		Use:   "prism",
		Short: "Serve Beam's prism runner as a portable job server",
		Long: `Serve Beam's prism runner as a portable job server, for
'sieve run RECIPE --runner=universal --endpoint=localhost:PORT --environment_type=LOOPBACK'.
Stops on SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if _, err := prism.CreateJobServer(ctx, prism.Options{Port: port}); err != nil {
				return fmt.Errorf("prism: %w", err)
			}
			fmt.Fprintf(stderr, "prism job server listening on localhost:%d\n", port)
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().IntVar(&port, "job_port", 8073, "port of the job management service")
	return cmd
}
