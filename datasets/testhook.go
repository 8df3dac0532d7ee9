package datasets

import (
	"os"
	"time"
)

// PauseBeforeCommitEnv names an environment variable for tests: when it
// holds a file name, Commit on a local store, once the staging
// directory is complete (manifest written) and just before the rename
// that publishes the version, writes the staging directory's path to
// that file and waits until the file is removed (at most a minute). A
// test can then kill the run at exactly that point
// (cmd/sieve/kill_test.go). Unset, it costs one string comparison.
const PauseBeforeCommitEnv = "SIEVE_TEST_PAUSE_BEFORE_COMMIT"

var pauseBeforeCommitFile = os.Getenv(PauseBeforeCommitEnv)

func pauseBeforeCommit(staging string) {
	if pauseBeforeCommitFile == "" {
		return
	}
	tmp := pauseBeforeCommitFile + ".tmp"
	if os.WriteFile(tmp, []byte(staging), 0o644) != nil || os.Rename(tmp, pauseBeforeCommitFile) != nil {
		return
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(pauseBeforeCommitFile); err != nil {
			return
		}
	}
}
