package main

import (
	"bytes"
	"log/slog"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"time"
)

// peakHeap keeps the in-use heap profile taken when the live heap was at
// its largest: sampled every interval, a new profile is captured whenever
// the live heap grows 5% past the last capture. Written on stop, it shows
// where the run's memory was at its peak rather than at its end (when
// most of it has been released). Profiles are taken in memory and only
// the last one is written.
type peakHeap struct {
	file string
	stop chan struct{}
	done sync.WaitGroup
	peak uint64
	prof []byte
}

func startPeakHeap(file string, interval time.Duration) *peakHeap {
	h := &peakHeap{file: file, stop: make(chan struct{})}
	h.done.Add(1)
	go h.loop(interval)
	return h
}

func (h *peakHeap) loop(interval time.Duration) {
	defer h.done.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			continue
		}
		live := sample[0].Value.Uint64()
		if live < h.peak+h.peak/20 {
			continue
		}
		var b bytes.Buffer
		if err := pprof.Lookup("heap").WriteTo(&b, 0); err == nil {
			h.peak, h.prof = live, b.Bytes()
		}
	}
}

// Stop ends the sampling and writes the peak profile (or, if the heap
// never grew enough to be captured, the heap as it is now).
func (h *peakHeap) Stop() {
	close(h.stop)
	h.done.Wait()
	if h.prof == nil {
		var b bytes.Buffer
		if err := pprof.Lookup("heap").WriteTo(&b, 0); err != nil {
			slog.Error("heap profile", "err", err)
			return
		}
		h.prof = b.Bytes()
	}
	if err := os.WriteFile(h.file, h.prof, 0o644); err != nil {
		slog.Error("heap profile", "err", err)
		return
	}
	slog.Debug("heap profile written", "file", h.file, "peak_live_mib", h.peak>>20)
}
