package loadgen

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"time"
)

// newModel returns the I/O model that r's options ask for.
func newModel(r *run) (ioModel, error) {
	if r.o.IO == IOEpoll {
		return newEpoll(r)
	}
	return newConnIO(r), nil
}

// connBuf is the read buffer of each subscriber's goroutine.
const connBuf = 4 << 10

// A connIO serves each subscription from its own goroutine, with a
// net.Conn and a small read buffer. It works everywhere and speaks TLS.
type connIO struct {
	r      *run
	ctx    context.Context // cancelled by close, which ends every connection
	cancel context.CancelFunc
	wg     sync.WaitGroup // the subscribers' goroutines
	recs   []*recorder    // shared by subscribers: sub i uses recs[i%len]
}

func newConnIO(r *run) *connIO {
	c := &connIO{r: r}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.recs = make([]*recorder, 4*runtime.GOMAXPROCS(0))
	for i := range c.recs {
		c.recs[i] = new(recorder)
	}
	return c
}

func (c *connIO) recorders() []*recorder { return c.recs }

func (c *connIO) connect(sb *sub) {
	c.wg.Go(func() { c.serve(sb) })
}

func (c *connIO) close() {
	c.cancel()
	c.wg.Wait()
}

// serve connects sb and reconnects it as the run asks, until the run
// ends or gives sb up.
func (c *connIO) serve(sb *sub) {
	rec := c.recs[sb.id%len(c.recs)]
	buf := make([]byte, connBuf)
	for {
		err := c.attempt(sb, rec, buf)
		delay, again := c.r.ended(sb, err)
		if !again {
			return
		}
		t := time.NewTimer(delay)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if c.r.stopping.Load() {
			return
		}
		sb.start = time.Now().UnixNano()
	}
}

// attempt makes one connection for sb and reads its stream until it
// ends, returning why.
func (c *connIO) attempt(sb *sub, rec *recorder, buf []byte) error {
	sb.s.reset()
	dctx, cancel := context.WithTimeout(c.ctx, c.r.o.ConnectTimeout)
	defer cancel()
	conn, err := c.dial(dctx, sb)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(c.ctx, func() { conn.Close() })
	defer stop()
	deadline, _ := dctx.Deadline()
	conn.SetDeadline(deadline) // until the head has arrived
	if _, err := conn.Write(sb.tgt.request(sb.s.lastID)); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			now := time.Now().UnixNano()
			rec.mu.Lock()
			opened, ferr := sb.s.feed(buf[:n], now, rec)
			if opened {
				c.r.noteOpen(sb, now, rec)
			}
			rec.mu.Unlock()
			if opened {
				conn.SetDeadline(time.Time{})
			}
			if ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			if sb.s.state == stIdentity && sb.s.bodyLeft < 0 {
				return io.EOF // a body delimited by the end of the connection
			}
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
	}
}

// dial connects to the hub from sb's source address.
func (c *connIO) dial(ctx context.Context, sb *sub) (net.Conn, error) {
	d := &net.Dialer{Control: dialControl}
	if sb.src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: sb.src.AsSlice()}
	}
	addr := sb.tgt.addr.String()
	if !sb.tgt.tls {
		return d.DialContext(ctx, "tcp", addr)
	}
	host, _, err := net.SplitHostPort(sb.tgt.host)
	if err != nil {
		host = sb.tgt.host
	}
	cfg := &tls.Config{}
	if c.r.o.TLSConfig != nil {
		cfg = c.r.o.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"http/1.1"}
	td := &tls.Dialer{NetDialer: d, Config: cfg}
	return td.DialContext(ctx, "tcp", addr)
}
