//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package hub

import (
	"context"
	"sync"
)

var locks sync.Map // name -> chan struct{} (a one-slot semaphore)

// lockFile takes an exclusive lock on name within this process (other
// processes are not excluded on this platform), until the returned
// function is called.
func lockFile(ctx context.Context, name string) (func(), error) {
	v, _ := locks.LoadOrStore(name, make(chan struct{}, 1))
	ch := v.(chan struct{})
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}
