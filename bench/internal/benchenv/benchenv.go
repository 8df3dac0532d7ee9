// Package benchenv is what sieve's benchmark commands share: the machine
// they ran on, how busy it was, the module root, and JSON result lines
// with the documented keys first.
package benchenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// ModuleRoot returns the nearest directory at or above the working
// directory whose go.mod declares the sieve module.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/sieve-data/sieve\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the sieve module")
		}
		dir = parent
	}
}

// CPUInfo returns the first value of key in /proc/cpuinfo ("" if none).
func CPUInfo(key string) string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// CPUFlag reports whether /proc/cpuinfo lists flag.
func CPUFlag(flag string) bool {
	for _, f := range strings.Fields(CPUInfo("flags")) {
		if f == flag {
			return true
		}
	}
	return false
}

// Machine returns "<cores> cores, <CPU model>".
func Machine() string {
	m := CPUInfo("model name")
	if m == "" {
		m = runtime.GOARCH
	}
	return fmt.Sprintf("%d cores, %s", runtime.NumCPU(), m)
}

// CPUBusySeconds returns the machine's total non-idle CPU time from
// /proc/stat (user, nice, system, irq, softirq, steal; USER_HZ = 100), or
// -1 where unknown. The difference over a run, less the run's own CPU
// time, is what other processes used meanwhile.
func CPUBusySeconds() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1
	}
	var busy float64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // skip idle (4), iowait (5)
		v, _ := strconv.ParseFloat(f[i], 64)
		busy += v
	}
	return busy / 100
}

// Line is a JSON object whose keys come out in a chosen order.
type Line struct {
	m    map[string]any
	keys []string
}

// Ordered returns m as a Line with the keys of first (those present) in
// that order, then the rest by name.
func Ordered(m map[string]any, first ...string) Line {
	var keys []string
	seen := map[string]bool{}
	for _, k := range first {
		if _, ok := m[k]; ok && !seen[k] {
			keys = append(keys, k)
			seen[k] = true
		}
	}
	var rest []string
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return Line{m: m, keys: append(keys, rest...)}
}

// MarshalJSON writes the object in the Line's key order.
func (l Line) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range l.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(l.m[k])
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", k, err)
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
