package main

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// sample is one run of an operation.
type sample struct {
	wall     time.Duration
	cpu      time.Duration // user + system time of the host process
	rssKB    int64         // the host process's peak resident set
	apdus    int           // counted by the card
	toCard   int           // command bytes
	fromCard int           // response bytes
}

// row is an operation at one latency, with its runs.
type row struct {
	latency time.Duration
	op      *op
	samples []sample
	// ref is the row a relative target compares with (sha256sum for the
	// CAdES 1 GiB row), set when the table is built.
	ref *row
}

// op is a measured operation: its name in the table, its target and the
// legend line that says exactly what is measured.
type op struct {
	name   string
	target target
	legend string
}

// target is an objective printed next to the figures. check returns
// whether it is met and, when not, by how much it is missed.
type target interface {
	String() string
	check(r *row) (met bool, detail string)
}

// maxAPDUs: at most n APDUs.
type maxAPDUs int

func (t maxAPDUs) String() string { return fmt.Sprintf("≤ %d APDUs", int(t)) }

func (t maxAPDUs) check(r *row) (bool, string) {
	_, hi := r.apduRange()
	if hi <= int(t) {
		return true, "yes"
	}
	over := hi - int(t)
	return false, fmt.Sprintf("NO: %d APDUs, %d over (+%.0f%%)", hi, over, 100*float64(over)/float64(t))
}

// quickNoAPDU: median wall time at most d and no APDU at all.
type quickNoAPDU time.Duration

func (t quickNoAPDU) String() string {
	return fmt.Sprintf("≤ %s, 0 APDUs", fmtLatency(time.Duration(t)))
}

func (t quickNoAPDU) check(r *row) (bool, string) {
	var miss []string
	if med := r.wallMedian(); med > time.Duration(t) {
		miss = append(miss, fmt.Sprintf("%s over (%.1f×)", fmtDur(med-time.Duration(t)), float64(med)/float64(t)))
	}
	if _, hi := r.apduRange(); hi > 0 {
		miss = append(miss, fmt.Sprintf("%d APDUs", hi))
	}
	if len(miss) == 0 {
		return true, "yes"
	}
	return false, "NO: " + strings.Join(miss, ", ")
}

// relative: median wall time at most factor × the median of the row named
// ref at the same latency.
type relative struct {
	factor float64
	ref    string
}

func (t relative) String() string { return fmt.Sprintf("≤ %.1f × %s", t.factor, t.ref) }

func (t relative) check(r *row) (bool, string) {
	if r.ref == nil || len(r.ref.samples) == 0 {
		return false, "not measured: no " + t.ref + " row"
	}
	med, base := r.wallMedian(), r.ref.wallMedian()
	ratio := float64(med) / float64(base)
	if ratio <= t.factor {
		return true, fmt.Sprintf("yes: %.2f×", ratio)
	}
	over := med - time.Duration(t.factor*float64(base))
	return false, fmt.Sprintf("NO: %.2f×, %s over", ratio, fmtDur(over))
}

func (r *row) walls() []time.Duration {
	w := make([]time.Duration, len(r.samples))
	for i, s := range r.samples {
		w[i] = s.wall
	}
	slices.Sort(w)
	return w
}

func (r *row) wallMedian() time.Duration { return median(r.walls()) }

func (r *row) apduRange() (lo, hi int) {
	for i, s := range r.samples {
		if i == 0 || s.apdus < lo {
			lo = s.apdus
		}
		if s.apdus > hi {
			hi = s.apdus
		}
	}
	return lo, hi
}

// median of a sorted slice; the mean of the middle two for an even length.
func median[T int | int64 | time.Duration](sorted []T) T {
	n := len(sorted)
	switch {
	case n == 0:
		return 0
	case n%2 == 1:
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func medianOf[T int | int64 | time.Duration](samples []sample, f func(sample) T) T {
	v := make([]T, len(samples))
	for i, s := range samples {
		v[i] = f(s)
	}
	slices.Sort(v)
	return median(v)
}

// fmtDur prints a duration in ms below 1 s, in s above, with three or
// four significant digits.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", ms)
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.3f s", ms/1000)
}

// fmtLatency prints a per-APDU latency: "0 ms", "20 ms".
func fmtLatency(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64) + " ms"
}

// writeTable prints the rows as one aligned table.
func writeTable(w io.Writer, rows []*row) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "latency\toperation\tAPDUs\tbytes to card\tbytes from card\twall median\tmin\tmax\tCPU\tpeak RSS\ttarget\tmet\t")
	var last time.Duration = -1
	for _, r := range rows {
		if len(r.samples) == 0 {
			continue
		}
		if r.latency != last && last >= 0 {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t\t\t\t")
		}
		last = r.latency
		lo, hi := r.apduRange()
		apdus := fmt.Sprint(hi)
		if lo != hi {
			apdus = fmt.Sprintf("%d–%d", lo, hi)
		}
		w := r.walls()
		var peak int64
		for _, s := range r.samples {
			peak = max(peak, s.rssKB)
		}
		tgt, met := "", ""
		if r.op.target != nil {
			tgt = r.op.target.String()
			_, met = r.op.target.check(r)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%.1f MiB\t%s\t%s\t\n",
			fmtLatency(r.latency), r.op.name, apdus,
			medianOf(r.samples, func(s sample) int { return s.toCard }),
			medianOf(r.samples, func(s sample) int { return s.fromCard }),
			fmtDur(median(w)), fmtDur(w[0]), fmtDur(w[len(w)-1]),
			fmtDur(medianOf(r.samples, func(s sample) time.Duration { return s.cpu })),
			float64(peak)/1024, tgt, met)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// The cells end with a tab so that the last column aligns too; the
	// padding it leaves at the ends of the lines goes.
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		if _, err := fmt.Fprintln(w, strings.TrimRight(line, " ")); err != nil {
			return err
		}
	}
	return nil
}

// writeVerdicts lists the targets met and missed, one line each.
func writeVerdicts(w io.Writer, rows []*row) {
	var met, missed []string
	for _, r := range rows {
		if r.op.target == nil || len(r.samples) == 0 {
			continue
		}
		ok, detail := r.op.target.check(r)
		line := fmt.Sprintf("  %-6s %s (%s): %s", fmtLatency(r.latency), r.op.name, r.op.target, detail)
		if ok {
			met = append(met, line)
		} else {
			missed = append(missed, line)
		}
	}
	fmt.Fprintf(w, "Targets met: %d of %d\n", len(met), len(met)+len(missed))
	for _, l := range met {
		fmt.Fprintln(w, l)
	}
	if len(missed) > 0 {
		fmt.Fprintln(w, "Targets missed:")
		for _, l := range missed {
			fmt.Fprintln(w, l)
		}
	}
}

// writeLegend says what each operation measures.
func writeLegend(w io.Writer, ops []*op) {
	fmt.Fprintln(w, "What is measured:")
	width := 0
	for _, o := range ops {
		width = max(width, utf8.RuneCountInString(o.name))
	}
	for _, o := range ops {
		fmt.Fprintf(w, "  %-*s  %s\n", width, o.name, o.legend)
	}
}
