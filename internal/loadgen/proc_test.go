package loadgen

import (
	"strings"
	"testing"
)

// TestToolWarning checks the calibration of the tool's CPU warning on
// the figures it was calibrated on.
func TestToolWarning(t *testing.T) {
	hub := func(cpu float64) *ServerReport { return &ServerReport{CPUPercent: cpu} }
	tests := []struct {
		name string
		tool ToolReport
		srv  *ServerReport
		want string // "" for none
	}{
		{"light load: more than the hub, but little", ToolReport{IO: IOEpoll, Workers: 1, CPUs: 2, CPUPercent: 13, MachineBusyPercent: 71}, hub(10), ""},
		{"light load on a busy machine", ToolReport{IO: IOEpoll, Workers: 1, CPUs: 2, CPUPercent: 4, MachineBusyPercent: 99}, hub(2), ""},
		{"busy machine, tool a real share", ToolReport{IO: IOEpoll, Workers: 1, CPUs: 2, CPUPercent: 46, MachineBusyPercent: 99}, hub(75),
			"the machine's 2 CPUs were 99% busy while publishing (this tool 46% of a core, the hub 75%)"},
		{"busy machine, no server pid", ToolReport{IO: IOGoroutine, CPUs: 2, CPUPercent: 60, MachineBusyPercent: 100}, nil,
			"the machine's 2 CPUs were 100% busy while publishing (this tool 60% of a core)"},
		{"idle machine, tool far below the hub", ToolReport{IO: IOEpoll, Workers: 2, CPUs: 8, CPUPercent: 60, MachineBusyPercent: 40}, hub(300), ""},
		{"its one loop busy", ToolReport{IO: IOEpoll, Workers: 1, CPUs: 8, CPUPercent: 85, MachineBusyPercent: 30}, hub(50),
			"this tool used 85% of a core with 1 epoll loop: it may not have kept up, and be what limits the figures (give --workers more)"},
		{"two loops, not busy", ToolReport{IO: IOEpoll, Workers: 2, CPUs: 8, CPUPercent: 85, MachineBusyPercent: 30}, hub(50), ""},
		{"machine unknown, half of it", ToolReport{IO: IOGoroutine, CPUs: 2, CPUPercent: 100, MachineBusyPercent: -1}, nil,
			"this tool used 100% of a core, half of this machine's 2 CPUs"},
		{"machine unknown, less", ToolReport{IO: IOGoroutine, CPUs: 4, CPUPercent: 100, MachineBusyPercent: -1}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := toolWarning(&tt.tool, tt.srv)
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("toolWarning = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	busy, total, ok := parseStat([]byte("cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 1 2 3 4\n"))
	if !ok || busy != 170*clockTick || total != 990*clockTick {
		t.Errorf("parseStat = %v, %v, %v; want 1.7s busy of 9.9s", busy, total, ok)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 x 4 5"} {
		if _, _, ok := parseStat([]byte(bad)); ok {
			t.Errorf("parseStat(%q) ok; want it refused", bad)
		}
	}
}
