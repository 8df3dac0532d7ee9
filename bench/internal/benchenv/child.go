package benchenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Measurement is what RunChild saw of one child process.
type Measurement struct {
	// Seconds is the child's wall time, process start to exit.
	Seconds float64
	// MaxRSSKiB is ru_maxrss from wait4: on Linux the largest resident
	// set of the child and of any descendants it waited for (a maximum
	// over processes, not a sum).
	MaxRSSKiB int64
	// OwnCPU is the child's user+system CPU time (descendants it waited
	// for included).
	OwnCPU float64
	// OtherCPU is the CPU time other processes used during the run
	// (machine busy time from /proc/stat minus OwnCPU): well above zero
	// means the run shared the CPUs and its number is not clean.
	OtherCPU float64
	// Stdout is everything the child wrote to its standard output.
	Stdout []byte
}

// RunChild runs cmd as the leader of a new process group, its stderr (and
// then its stdout) going to the file logPath, kills the whole group after
// timeout, and measures it. A non-zero exit is an error that quotes the
// tail of the log.
func RunChild(cmd *exec.Cmd, logPath string, timeout time.Duration) (Measurement, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return Measurement{}, err
	}
	defer logFile.Close()
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	busy0 := CPUBusySeconds()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Measurement{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// Kill the child's whole process group.
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	waitErr := cmd.Wait()
	elapsed := time.Since(start).Seconds()
	busy1 := CPUBusySeconds()
	close(done)
	fmt.Fprintf(logFile, "\n--- stdout ---\n%s", stdout.Bytes())
	if ctx.Err() != nil {
		return Measurement{}, fmt.Errorf("timed out after %s (log: %s)", timeout, logPath)
	}
	if waitErr != nil {
		return Measurement{}, fmt.Errorf("%v; stderr tail: %s (log: %s)", waitErr, LogTail(logPath, 400), logPath)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return Measurement{}, errors.New("no rusage")
	}
	own := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	other := 0.0
	if busy0 >= 0 && busy1 >= 0 {
		other = max(0, busy1-busy0-own)
	}
	return Measurement{Seconds: elapsed, MaxRSSKiB: ru.Maxrss, OwnCPU: own, OtherCPU: other, Stdout: stdout.Bytes()}, nil
}

// LogTail returns the last n bytes of a RunChild log's stderr part, on
// one line.
func LogTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if i := bytes.Index(b, []byte("\n--- stdout ---\n")); i >= 0 {
		b = b[:i]
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "(no stderr)"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.ReplaceAll(string(b), "\n", " | ")
}
