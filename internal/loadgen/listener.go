package loadgen

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// checkListener checks, through /proc, that process pid holds a socket
// listening at addr, so that the figures read of pid are the hub's. It
// returns "" when it does, and otherwise a warning: another process
// holds it (named when this one may look), no socket of this network
// namespace listens there, or it could not tell.
func checkListener(pid int, addr netip.AddrPort) string {
	return checkListenerIn("/proc", pid, addr)
}

// checkListenerIn is checkListener with /proc at proc.
func checkListenerIn(proc string, pid int, addr netip.AddrPort) string {
	inodes, err := listeningInodes(proc, addr)
	if err != nil {
		return fmt.Sprintf("could not check that pid %d listens at %s (%v): the server figures may not be the hub's", pid, addr, err)
	}
	if len(inodes) == 0 {
		return fmt.Sprintf("no socket on this machine listens at %s (is the hub in a container, or elsewhere?): the server figures are of pid %d, which may not be the hub", addr, pid)
	}
	holds, err := holdsSocket(proc, pid, inodes)
	if err != nil {
		return fmt.Sprintf("could not check that pid %d listens at %s (%v): the server figures may not be the hub's", pid, addr, err)
	}
	if holds {
		return ""
	}
	msg := fmt.Sprintf("pid %d does not listen at %s", pid, addr)
	if owner := socketOwner(proc, inodes); owner > 0 {
		msg += fmt.Sprintf("; pid %d%s does", owner, commOf(proc, owner))
	}
	return msg + ": the server figures are not the hub's (give --server-pid the hub's process)"
}

// listeningInodes returns the inodes of the TCP sockets listening at
// addr, from proc/net/tcp and proc/net/tcp6: bound to addr's IP or to
// every address, on addr's port.
func listeningInodes(proc string, addr netip.AddrPort) (map[string]bool, error) {
	inodes := map[string]bool{}
	read := 0
	var firstErr error
	for _, name := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join(proc, "net", name))
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue // no IPv6, say
		}
		read++
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // the header
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 10 || f[3] != "0A" { // TCP_LISTEN
				continue
			}
			local, ok := parseProcAddr(f[1])
			if !ok || local.Port() != addr.Port() {
				continue
			}
			ip := local.Addr()
			switch {
			case ip.Unmap() == addr.Addr().Unmap(),
				ip.IsUnspecified() && (ip.Is6() || addr.Addr().Unmap().Is4()):
				inodes[f[9]] = true
			}
		}
	}
	if read == 0 {
		return nil, firstErr
	}
	return inodes, nil
}

// parseProcAddr parses an address of /proc/net/tcp{,6}: the IP as
// 32-bit words in hex, each in the machine's byte order, a colon, and
// the port in hex.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok || len(ipHex) != 8 && len(ipHex) != 32 {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(ipHex)
	if err != nil {
		return netip.AddrPort{}, false
	}
	for i := 0; i < len(raw); i += 4 {
		// The hex shows each word as a number: most significant byte
		// first. In memory, in network order, it was in native order.
		binary.NativeEndian.PutUint32(raw[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	ip, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(ip, uint16(port)), true
}

// holdsSocket reports whether process pid has a file descriptor on one
// of the socket inodes.
func holdsSocket(proc string, pid int, inodes map[string]bool) (bool, error) {
	dir := filepath.Join(proc, strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return false, fmt.Errorf("cannot read the file descriptors of pid %d: run as its user", pid)
		}
		return false, err
	}
	for _, e := range entries {
		if inodes[socketInode(filepath.Join(dir, e.Name()))] {
			return true, nil
		}
	}
	return false, nil
}

// socketOwner returns a process, among those this one may look at, that
// holds one of the socket inodes; 0 if none.
func socketOwner(proc string, inodes map[string]bool) int {
	procs, err := os.ReadDir(proc)
	if err != nil {
		return 0
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if ok, _ := holdsSocket(proc, pid, inodes); ok {
			return pid
		}
	}
	return 0
}

// socketInode returns the inode of the socket a /proc/PID/fd link points
// to, or "".
func socketInode(link string) string {
	target, err := os.Readlink(link)
	if err != nil {
		return ""
	}
	ino, ok := strings.CutPrefix(target, "socket:[")
	if !ok {
		return ""
	}
	return strings.TrimSuffix(ino, "]")
}

// commOf returns " (name)", the command name of process pid, or "".
func commOf(proc string, pid int) string {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "comm"))
	if err != nil {
		return ""
	}
	return " (" + strings.TrimSpace(string(b)) + ")"
}
