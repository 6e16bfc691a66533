package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ,
// 100 on every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// A procWatch samples another process's RSS and CPU time at the phase
// boundaries of a run. A nil *procWatch samples nothing.
type procWatch struct {
	pid     int
	rss     []int64
	cpu     []time.Duration
	err     error  // the first failed sample
	warning string // from checkListener
}

// watchProc checks that pid can be read.
func watchProc(pid int) (*procWatch, error) {
	p := &procWatch{pid: pid}
	if _, err := readRSS(strconv.Itoa(pid)); err != nil {
		return nil, fmt.Errorf("loadgen: server pid %d: %w", pid, err)
	}
	return p, nil
}

// sample reads the process's RSS and CPU time.
func (p *procWatch) sample() {
	if p == nil {
		return
	}
	rss, err := readRSS(strconv.Itoa(p.pid))
	cpu, err2 := readCPU(p.pid)
	if err == nil {
		err = err2
	}
	if err != nil && p.err == nil {
		p.err = err
	}
	p.rss = append(p.rss, rss)
	p.cpu = append(p.cpu, cpu)
}

// report makes the server report from the three samples: before
// connecting, after, and at the end.
func (p *procWatch) report(connecting, running time.Duration, connected int64) *ServerReport {
	r := &ServerReport{PID: p.pid, Warning: p.warning}
	if p.err != nil {
		r.Error = p.err.Error()
	}
	if len(p.rss) < 3 {
		return r
	}
	r.RSSBeforeKiB, r.RSSConnectedKiB, r.RSSAfterKiB = p.rss[0], p.rss[1], p.rss[2]
	if connected > 0 && p.rss[0] > 0 && p.rss[1] > 0 {
		r.KiBPerConnection = float64(p.rss[1]-p.rss[0]) / float64(connected)
	}
	r.ConnectCPUPercent = cpuPercent(p.cpu[1]-p.cpu[0], connecting)
	r.CPUPercent = cpuPercent(p.cpu[2]-p.cpu[1], running)
	return r
}

// readRSS returns the VmRSS of /proc/PID/status in KiB; pid may be "self".
func readRSS(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v)
			if len(f) >= 1 {
				return strconv.ParseInt(string(f[0]), 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%s/status", pid)
}

// readCPU returns the user and system CPU time of process pid.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields start
	// after the last ')', with field 3 (state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64) // field 14
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// machineCPU returns the busy and total CPU time of the machine, all
// CPUs together, from the first line of /proc/stat; ok is false where
// there is none.
func machineCPU() (busy, total time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	return parseStat(b)
}

// parseStat reads the "cpu" line of /proc/stat: user, nice, system,
// idle, iowait, irq, softirq and steal ticks (later fields, guest time,
// are already counted in user and nice). Idle and iowait are not busy.
func parseStat(b []byte) (busy, total time.Duration, ok bool) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, false
	}
	var sum, idle int64
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		sum += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return time.Duration(sum-idle) * clockTick, time.Duration(sum) * clockTick, true
}
