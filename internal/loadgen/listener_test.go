package loadgen

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// procHex writes addr as /proc/net/tcp{,6} shows it on this machine.
func procHex(addr netip.AddrPort) string {
	raw := addr.Addr().AsSlice()
	var b strings.Builder
	for i := 0; i < len(raw); i += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(raw[i:]))
	}
	return fmt.Sprintf("%s:%04X", b.String(), addr.Port())
}

func TestParseProcAddr(t *testing.T) {
	for _, s := range []string{"127.0.0.1:8080", "0.0.0.0:443", "[::1]:8080", "[::]:80", "[::ffff:127.0.0.1]:9", "[2001:db8::1]:65535"} {
		want := netip.MustParseAddrPort(s)
		got, ok := parseProcAddr(procHex(want))
		if !ok || got != want {
			t.Errorf("parseProcAddr(%q) = %v, %v; want %v", procHex(want), got, ok, want)
		}
	}
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 { // little-endian, as the kernel docs show
		if got, ok := parseProcAddr("0100007F:1F90"); !ok || got != netip.MustParseAddrPort("127.0.0.1:8080") {
			t.Errorf("parseProcAddr(0100007F:1F90) = %v, %v; want 127.0.0.1:8080", got, ok)
		}
	}
	for _, bad := range []string{"", "0100007F", "01007F:1F90", "0100007F:XYZ", "ZZ00007F:1F90"} {
		if got, ok := parseProcAddr(bad); ok {
			t.Errorf("parseProcAddr(%q) = %v; want it refused", bad, got)
		}
	}
}

// fakeProc builds a /proc with the listening sockets given (address →
// inode) and the processes given (pid → socket inodes it holds).
func fakeProc(t *testing.T, listen map[string]string, procs map[int][]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	tables := map[string]*strings.Builder{"tcp": {}, "tcp6": {}}
	for _, b := range tables {
		b.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	}
	i := 0
	for a, ino := range listen {
		ap := netip.MustParseAddrPort(a)
		name := "tcp"
		if ap.Addr().Is6() {
			name = "tcp6"
		}
		fmt.Fprintf(tables[name], "%4d: %s %s 0A 00000000:00000000 00:00000000 00000000  1000        0 %s 1 0000000000000000 100 0 0 10 0\n",
			i, procHex(ap), procHex(netip.AddrPortFrom(netip.IPv4Unspecified(), 0)), ino)
		i++
	}
	// A connection on the same port, not listening: ignored.
	fmt.Fprintf(tables["tcp"], "%4d: %s %s 01 00000000:00000000 00:00000000 00000000  1000        0 4444 1\n",
		i, procHex(netip.MustParseAddrPort("127.0.0.1:8080")), procHex(netip.MustParseAddrPort("127.0.0.2:5000")))
	for name, b := range tables {
		if err := os.WriteFile(filepath.Join(dir, "net", name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for pid, inodes := range procs {
		fd := filepath.Join(dir, fmt.Sprint(pid), "fd")
		if err := os.MkdirAll(fd, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprint(pid), "comm"), []byte(fmt.Sprintf("proc%d\n", pid)), 0o644)
		os.Symlink("/dev/null", filepath.Join(fd, "0"))
		for j, ino := range inodes {
			if err := os.Symlink("socket:["+ino+"]", filepath.Join(fd, fmt.Sprint(j+3))); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func TestCheckListenerIn(t *testing.T) {
	target := netip.MustParseAddrPort("127.0.0.1:8080")
	tests := []struct {
		name   string
		listen map[string]string
		procs  map[int][]string
		pid    int
		want   string // "" for no warning
	}{
		{"holds it", map[string]string{"127.0.0.1:8080": "100"}, map[int][]string{10: {"7", "100"}}, 10, ""},
		{"holds it on every address", map[string]string{"0.0.0.0:8080": "100"}, map[int][]string{10: {"100"}}, 10, ""},
		{"holds it on every IPv6 address", map[string]string{"[::]:8080": "100"}, map[int][]string{10: {"100"}}, 10, ""},
		{"another process holds it", map[string]string{"127.0.0.1:8080": "100"}, map[int][]string{10: {"5"}, 20: {"100"}}, 10,
			"pid 10 does not listen at 127.0.0.1:8080; pid 20 (proc20) does: the server figures are not the hub's"},
		{"no one it may see", map[string]string{"127.0.0.1:8080": "100"}, map[int][]string{10: {"5"}}, 10,
			"pid 10 does not listen at 127.0.0.1:8080: the server figures are not the hub's"},
		{"another port", map[string]string{"127.0.0.1:9090": "100"}, map[int][]string{10: {"100"}}, 10,
			"no socket on this machine listens at 127.0.0.1:8080"},
		{"another address", map[string]string{"127.0.0.2:8080": "100", "[::1]:8080": "101"}, map[int][]string{10: {"100", "101"}}, 10,
			"no socket on this machine listens at 127.0.0.1:8080"},
		{"no such process", map[string]string{"127.0.0.1:8080": "100"}, map[int][]string{20: {"100"}}, 10,
			"could not check that pid 10 listens at 127.0.0.1:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkListenerIn(fakeProc(t, tt.listen, tt.procs), tt.pid, target)
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("checkListenerIn = %q; want %q", got, tt.want)
			}
		})
	}
	if got := checkListenerIn(t.TempDir(), 10, target); !strings.Contains(got, "could not check") {
		t.Errorf("checkListenerIn without /proc/net = %q; want that it could not check", got)
	}
}

// TestCheckListenerLive checks against this machine's /proc: this test
// process holds its listener, and a child process does not.
func TestCheckListenerLive(t *testing.T) {
	if _, err := os.Stat("/proc/self/net/tcp"); err != nil {
		t.Skipf("no /proc/net/tcp here (%v)", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	if got := checkListener(os.Getpid(), addr); got != "" {
		t.Errorf("checkListener(this process) = %q; want no warning", got)
	}
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	want := fmt.Sprintf("pid %d does not listen at %s; pid %d (", child.Process.Pid, addr, os.Getpid())
	if got := checkListener(child.Process.Pid, addr); !strings.Contains(got, want) {
		t.Errorf("checkListener(child) = %q; want %q", got, want)
	}
}
