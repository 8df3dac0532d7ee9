package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/spf13/cobra"
)

// newPrismServeCmd is 'sieve prism'. Beam's prism job server listens on
// every interface and panics when it cannot listen; the port is checked
// first, the panic turned into an error, and the address printed is the
// one it listens on.
func newPrismServeCmd(stderr io.Writer) *cobra.Command {
	var port int
	cmd := &cobra.Command{
		Use:   "prism",
		Short: "Serve Beam's prism runner as a portable job server",
		Long: `Serve Beam's prism runner as a portable job server, for
'sieve run RECIPE --runner=universal --endpoint=localhost:PORT --environment_type=LOOPBACK'.
The server listens on every network interface (Beam offers no other), so
any host that can reach this one can submit jobs: keep the port behind a
firewall. --job_port 0 picks a free port. Stops on SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if port < 0 || port > 65535 {
				return usageError("prism: --job_port %d: want a port number from 0 to 65535", port)
			}
			// The same listen prism makes (":PORT"), closed at once: a
			// busy port is an error here rather than a panic there.
			l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
			if err != nil {
				if errors.Is(err, syscall.EADDRINUSE) {
					return fmt.Errorf("prism: port %d is in use (another job server?); pick another with --job_port", port)
				}
				return fmt.Errorf("prism: cannot listen on port %d: %v", port, err)
			}
			port = l.Addr().(*net.TCPAddr).Port
			l.Close()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := startPrism(ctx, port); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "prism job server listening on port %d of every interface (--endpoint=localhost:%d)\n", port, port)
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().IntVar(&port, "job_port", 8073, "port of the job management service (0: a free one)")
	return cmd
}

// startPrism starts prism's job server, turning its panic (it panics when
// it cannot listen) into an error.
func startPrism(ctx context.Context, port int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("prism: port %d: %v", port, r)
		}
	}()
	if _, err := prism.CreateJobServer(ctx, prism.Options{Port: port}); err != nil {
		return fmt.Errorf("prism: %w", err)
	}
	return nil
}
