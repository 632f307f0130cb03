package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine describes the computer and the build measured, one "Key: value"
// line each. The keys start with a capital so that benchstat, reading a
// saved report for its Go benchmarks, does not take them for benchmark
// configuration (which would set every run apart by its date).
func machine(root string, now time.Time) []string {
	lines := []string{
		"Date: " + now.Format(time.RFC3339),
		"CPUs (nproc): " + strconv.Itoa(runtime.NumCPU()),
		"CPU model: " + cpuInfo("model name"),
		"Memory: " + memTotal(),
		"Kernel: " + kernel(),
		"Go: " + runtime.Version(),
	}
	if out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output(); err == nil {
		lines = append(lines, "Commit: "+strings.TrimSpace(string(out)))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			lines = append(lines, "Load average at start: "+strings.Join(f[:3], " "))
		}
	}
	return lines
}

// cpuInfo returns the first value of key in /proc/cpuinfo.
func cpuInfo(key string) string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// memTotal returns MemTotal of /proc/meminfo in GiB.
func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return "unknown"
}

// kernel returns the kernel's name, release and the architecture, as
// uname -srm prints them.
func kernel() string {
	read := func(name string) string {
		b, err := os.ReadFile("/proc/sys/kernel/" + name)
		if err != nil {
			return "unknown"
		}
		return strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s %s %s", read("ostype"), read("osrelease"), runtime.GOARCH)
}
