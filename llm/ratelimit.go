package llm

import (
	"context"
	"sync"
	"time"
)

// clock is time for the client; tests substitute a fake one.
type clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends, returning ctx.Err() then.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// limiter paces units (requests or tokens) to rate per second with the
// generic cell rate algorithm: tat is the theoretical arrival time of the
// next unit; a take of n units may start at tat-tolerance and pushes tat
// on by n/rate. A take larger than the tolerance is not refused, it just
// delays the takes after it (so one long prompt never deadlocks a token
// limit). Takes are reservations: the caller sleeps outside the lock,
// and settle moves tat back or forth when the real count is known.
type limiter struct {
	mu    sync.Mutex
	rate  float64       // units per second
	tol   time.Duration // how far ahead of tat a take may start (burst)
	tat   time.Time
	clock clock
}

// newPerMinute paces perMinute units a minute with a burst of one
// second's worth (at least one unit).
func newPerMinute(perMinute int, c clock) *limiter {
	if perMinute <= 0 {
		return nil
	}
	rate := float64(perMinute) / 60
	burst := rate // one second's worth
	if burst < 1 {
		burst = 1
	}
	return &limiter{rate: rate, tol: time.Duration((burst - 1) / rate * float64(time.Second)), clock: c}
}

func (l *limiter) units(n float64) time.Duration {
	return time.Duration(n / l.rate * float64(time.Second))
}

// wait reserves n units and sleeps until they may be used. On ctx's end
// the reservation is given back.
func (l *limiter) wait(ctx context.Context, n float64) error {
	if l == nil || n <= 0 {
		return nil
	}
	l.mu.Lock()
	now := l.clock.Now()
	if l.tat.Before(now) {
		l.tat = now
	}
	start := l.tat.Add(-l.tol)
	l.tat = l.tat.Add(l.units(n))
	l.mu.Unlock()
	if d := start.Sub(now); d > 0 {
		if err := l.clock.Sleep(ctx, d); err != nil {
			l.settle(-n)
			return err
		}
	}
	return nil
}

// settle adds delta units (negative: gives units back) to what was
// reserved.
func (l *limiter) settle(delta float64) {
	if l == nil || delta == 0 {
		return
	}
	l.mu.Lock()
	l.tat = l.tat.Add(l.units(delta))
	l.mu.Unlock()
}
