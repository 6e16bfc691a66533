package loadgen

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// epollAvailable says whether IOEpoll can be used.
const epollAvailable = true

// readBuf is the size of an epoll worker's read buffer, shared by all its
// connections.
const readBuf = 64 << 10

var errConnectTimeout = errors.New("connect: timed out")

// An epollIO serves subscriptions from a few goroutines, each waiting on
// an epoll set of non-blocking sockets that it reads into one buffer.
type epollIO struct {
	r       *run
	family  int
	workers []*epollWorker
	wg      sync.WaitGroup // the workers' loops
}

// An epollWorker is one epoll set and the loop that serves it. The loop
// ends when close writes to wake.
type epollWorker struct {
	e    *epollIO
	epfd int
	wake int // an eventfd in the set: written to stop the loop
	buf  []byte
	dsts []unix.Sockaddr // the nodes' addresses, by target; connect writes to them, so each worker has its own
	// recv's arguments, kept here so that a read allocates nothing.
	msg unix.Msghdr
	iov unix.Iovec
	oob []byte

	// rec.mu also guards the fields below and the state of the subs
	// served here; the loop holds it while it handles a batch of events.
	rec    recorder
	subs   []*sub // by file descriptor
	timers timerHeap
	closed bool
}

func newEpoll(r *run) (ioModel, error) {
	e := &epollIO{r: r}
	e.family = unix.AF_INET6
	if r.tgt.addr.Addr().Is4() {
		e.family = unix.AF_INET
	}
	for range max(1, min(r.o.Workers, len(r.subs))) {
		w, err := e.newWorker()
		if err != nil {
			e.close()
			return nil, err
		}
		e.workers = append(e.workers, w)
	}
	for _, w := range e.workers {
		e.wg.Go(w.loop)
	}
	return e, nil
}

func (e *epollIO) newWorker() (*epollWorker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("loadgen: epoll: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("loadgen: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("loadgen: epoll: %w", err)
	}
	w := &epollWorker{e: e, epfd: epfd, wake: wake, buf: make([]byte, readBuf), oob: make([]byte, 128)}
	for _, t := range e.r.tgts {
		a := t.addr
		if e.family == unix.AF_INET {
			w.dsts = append(w.dsts, &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()})
		} else {
			w.dsts = append(w.dsts, &unix.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()})
		}
	}
	return w, nil
}

func (e *epollIO) connect(sb *sub) {
	w := e.workers[sb.id%len(e.workers)]
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	if !w.closed {
		w.dialLocked(sb, time.Now().UnixNano())
	}
}

func (e *epollIO) recorders() []*recorder {
	recs := make([]*recorder, len(e.workers))
	for i, w := range e.workers {
		recs[i] = &w.rec
	}
	return recs
}

func (e *epollIO) close() {
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for _, w := range e.workers {
		w.rec.mu.Lock()
		w.closed = true
		w.rec.mu.Unlock()
		unix.Write(w.wake, one)
	}
	e.wg.Wait()
}

// loop waits for events and handles them until close wakes it, then
// closes every connection and the epoll set.
//
// With Options.PollEvery, it never sleeps in epoll_wait: it takes what
// is ready with a zero timeout and, when that was less than a full
// batch, sleeps until PollEvery after the start of the last poll (or the
// next timer, if sooner). So the hub's writes find no reader waiting on
// the socket to wake, as with subscribers on other machines.
func (w *epollWorker) loop() {
	events := make([]unix.EpollEvent, 256)
	timeout := 100 // milliseconds
	poll := w.e.r.o.PollEvery
	var polled time.Time
	for {
		if poll > 0 {
			polled = time.Now()
			timeout = 0
		}
		n, err := unix.EpollWait(w.epfd, events, timeout)
		if err != nil && !errors.Is(err, unix.EINTR) {
			n = 0 // not expected; the loop goes on until closed
			timeout = 100
		}
		w.rec.mu.Lock()
		for _, ev := range events[:max(n, 0)] {
			fd := int(ev.Fd)
			if fd == w.wake || fd >= len(w.subs) {
				continue
			}
			if sb := w.subs[fd]; sb != nil && sb.gen == uint32(ev.Pad) {
				w.handleLocked(sb, ev.Events)
			}
		}
		now := time.Now()
		timeout = w.runTimersLocked(now.UnixNano())
		if w.closed {
			for fd, sb := range w.subs {
				if sb != nil {
					unix.Close(fd)
					w.subs[fd] = nil
				}
			}
			w.rec.mu.Unlock()
			unix.Close(w.epfd)
			unix.Close(w.wake)
			return
		}
		w.rec.mu.Unlock()
		if poll > 0 && n < len(events) {
			// Sleep until the next poll is due, or the next timer.
			// Close is seen within a poll.
			d := min(polled.Add(poll).Sub(now), time.Duration(timeout)*time.Millisecond)
			if d > 0 {
				time.Sleep(d)
			}
		}
	}
}

// dialLocked starts a connection for sb: a non-blocking socket, bound to
// sb's source address if it has one, connecting to the hub.
func (w *epollWorker) dialLocked(sb *sub, now int64) {
	e := w.e
	sb.start = now
	sb.s.reset()
	sb.gen++
	fd, err := unix.Socket(e.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		w.endLocked(sb, fmt.Errorf("socket: %w", err), now)
		return
	}
	if sb.src.IsValid() {
		// Let connect choose the port, per destination, rather than
		// bind, which needs a port unique for the address.
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		var sa unix.Sockaddr = &unix.SockaddrInet4{Addr: sb.src.As4()}
		if e.family == unix.AF_INET6 {
			sa = &unix.SockaddrInet6{Addr: sb.src.As16()}
		}
		if err := unix.Bind(fd, sa); err != nil {
			unix.Close(fd)
			w.endLocked(sb, fmt.Errorf("bind %s: %w", sb.src, err), now)
			return
		}
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	// Ask for the arrival time of what each read returns (Linux 5.1+;
	// without it, events are timed when read).
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, 1)
	if err := unix.Connect(fd, w.dsts[sb.node]); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		unix.Close(fd)
		w.endLocked(sb, w.connectErr(sb, err), now)
		return
	}
	for fd >= len(w.subs) {
		w.subs = append(w.subs, make([]*sub, max(1024, len(w.subs)))...)
	}
	w.subs[fd] = sb
	sb.fd = fd
	sb.out = sb.tgt.request(sb.s.lastID)
	ev := unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(fd), Pad: int32(sb.gen)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		w.endLocked(sb, fmt.Errorf("epoll: %w", err), now)
		return
	}
	heap.Push(&w.timers, timer{due: now + int64(e.r.o.ConnectTimeout), sb: sb, gen: sb.gen, kind: timerConnect})
}

func (w *epollWorker) connectErr(sb *sub, err error) error {
	if sb.src.IsValid() {
		return fmt.Errorf("connect %s->%s: %w", sb.src, sb.tgt.addr, err)
	}
	return fmt.Errorf("connect %s: %w", sb.tgt.addr, err)
}

// handleLocked handles the epoll events ev of sb's socket.
func (w *epollWorker) handleLocked(sb *sub, ev uint32) {
	if len(sb.out) > 0 {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		now := time.Now().UnixNano()
		if soerr, err := unix.GetsockoptInt(sb.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || soerr != 0 {
			if err == nil {
				err = unix.Errno(soerr)
			}
			w.endLocked(sb, w.connectErr(sb, err), now)
			return
		}
		n, err := unix.Write(sb.fd, sb.out)
		switch {
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			return
		case err != nil:
			w.endLocked(sb, fmt.Errorf("write request: %w", err), now)
			return
		}
		if sb.out = sb.out[n:]; len(sb.out) > 0 {
			return
		}
		sb.out = nil
		e := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(sb.fd), Pad: int32(sb.gen)}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, sb.fd, &e); err != nil {
			w.endLocked(sb, fmt.Errorf("epoll: %w", err), now)
		}
		return
	}
	if ev&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
		return
	}
	// Level-triggered: what is left unread is reported again, so a busy
	// socket gets a few reads and then waits its turn.
	for range 4 {
		n, arrived, err := w.recv(sb.fd)
		now := time.Now().UnixNano()
		switch {
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			w.endLocked(sb, fmt.Errorf("read: %w", err), now)
			return
		case n == 0:
			w.endLocked(sb, io.ErrUnexpectedEOF, now)
			return
		}
		// Time events by their arrival in the socket, so that the time
		// they waited for this loop is not counted as the hub's.
		at := now
		if arrived > 0 && arrived <= now {
			at = arrived
			w.rec.readDelay.record(time.Duration(now - arrived))
		}
		opened, err := sb.s.feed(w.buf[:n], at, &w.rec)
		if opened {
			w.e.r.noteOpen(sb, at, &w.rec)
		}
		if err != nil {
			w.endLocked(sb, err, now)
			return
		}
		if n < len(w.buf) {
			return
		}
	}
}

// endLocked closes sb's connection, if it has one, after err, and
// schedules its reconnection if the run wants one.
func (w *epollWorker) endLocked(sb *sub, err error, now int64) {
	if sb.fd >= 0 {
		unix.Close(sb.fd) // also removes it from the epoll set
		w.subs[sb.fd] = nil
		sb.fd = -1
	}
	sb.out = nil
	if sb.s.state == stIdentity && sb.s.bodyLeft < 0 && errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF // a body delimited by the end of the connection
	}
	if delay, again := w.e.r.ended(sb, err); again && !w.closed {
		heap.Push(&w.timers, timer{due: now + int64(delay), sb: sb, gen: sb.gen, kind: timerReconnect})
	}
}

// runTimersLocked fires the timers due at now and returns the epoll wait
// timeout until the next, in milliseconds: at most 100.
func (w *epollWorker) runTimersLocked(now int64) int {
	for len(w.timers) > 0 && w.timers[0].due <= now {
		t := heap.Pop(&w.timers).(timer)
		if t.sb.gen != t.gen {
			continue // the connection it was set for is gone
		}
		switch t.kind {
		case timerConnect:
			if t.sb.fd >= 0 && !t.sb.open {
				w.endLocked(t.sb, errConnectTimeout, now)
			}
		case timerReconnect:
			if t.sb.fd < 0 && !w.closed && !w.e.r.stopping.Load() {
				w.dialLocked(t.sb, now)
			}
		}
	}
	if len(w.timers) == 0 {
		return 100
	}
	return int(min(100, max(1, (w.timers[0].due-now+999_999)/1_000_000)))
}

// Kinds of timer.
const (
	timerConnect   = iota // the connection attempt times out
	timerReconnect        // reconnect after the retry delay
)

// A timer is due at a time, for the connection gen of sb.
type timer struct {
	due  int64 // Unix nanoseconds
	sb   *sub
	gen  uint32
	kind uint8
}

// A timerHeap orders timers by due time; it implements heap.Interface.
type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = timer{}
	*h = old[:len(old)-1]
	return t
}

// recv reads from fd into w.buf, returning the byte count and, if the
// socket gave one, the arrival time in Unix nanoseconds of the latest
// data read: with several segments in one read, the earlier ones are
// timed a little late, never early.
func (w *epollWorker) recv(fd int) (n int, arrived int64, err error) {
	w.iov.Base = &w.buf[0]
	w.iov.SetLen(len(w.buf))
	w.msg = unix.Msghdr{Iov: &w.iov, Control: &w.oob[0]}
	w.msg.SetIovlen(1)
	w.msg.SetControllen(len(w.oob))
	r, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&w.msg)), 0)
	if errno != 0 {
		return 0, 0, errno
	}
	return int(r), arrivalTime(w.oob[:w.msg.Controllen]), nil
}

// arrivalTime returns the SO_TIMESTAMPNS_NEW time among the control
// messages oob, or 0.
func arrivalTime(oob []byte) int64 {
	hdr := unix.CmsgLen(0)
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPNS_NEW && l-hdr >= 16 {
			d := oob[hdr:l]
			sec := int64(binary.NativeEndian.Uint64(d[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(d[8:16]))
			return sec*1e9 + nsec
		}
		oob = oob[min(len(oob), unix.CmsgSpace(l-hdr)):]
	}
	return 0
}
