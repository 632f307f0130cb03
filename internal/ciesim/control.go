package ciesim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// Control is the line protocol of cmd/cie-sim's control socket: one request
// per line, one answer line per request.
//
//	stats            → apdus=N sent=N received=N   (sent/received: bytes by the card)
//	stats reset      → ok
//	remove, insert   → ok                           (card out of / into the vpcd reader)
//	reset            → ok                           (security state lost, as FaultReset)
//	badmac           → ok                           (FaultBadMAC)
//	sw 6F00          → ok                           (FaultSW)
//	mute             → ok                           (FaultMute)
//	latency 20ms     → ok
//	pin-tries        → pin=3 puk=10
//	quit             → ok, then the simulator exits
//
// Anything else is answered "error: …".
type Control struct {
	Card *Card
	VPCD *VPCD // nil when the card is not connected to vpcd
}

// Handle answers one request line; quit reports a "quit".
func (ctl *Control) Handle(line string) (reply string, quit bool) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "error: empty request", false
	}
	arg := func() (string, bool) {
		if len(f) != 2 {
			return "", false
		}
		return f[1], true
	}
	switch f[0] {
	case "stats":
		if len(f) == 2 && f[1] == "reset" {
			ctl.Card.ResetStats()
			return "ok", false
		}
		if len(f) != 1 {
			break
		}
		s := ctl.Card.Stats()
		return fmt.Sprintf("apdus=%d sent=%d received=%d", s.APDUs, s.BytesOut, s.BytesIn), false
	case "remove", "insert":
		if len(f) != 1 {
			break
		}
		if ctl.VPCD == nil {
			return "error: not connected to vpcd", false
		}
		if f[0] == "remove" {
			ctl.VPCD.Remove()
		} else {
			ctl.VPCD.Insert()
		}
		return "ok", false
	case "reset", "badmac", "mute", "quit":
		if len(f) != 1 {
			break
		}
		switch f[0] {
		case "reset":
			ctl.Card.Inject(FaultReset)
		case "badmac":
			ctl.Card.Inject(FaultBadMAC)
		case "mute":
			ctl.Card.Inject(FaultMute)
		}
		return "ok", f[0] == "quit"
	case "sw":
		a, ok := arg()
		if !ok {
			break
		}
		v, err := strconv.ParseUint(a, 16, 16)
		if err != nil || len(a) != 4 {
			return fmt.Sprintf("error: status word %q: want 4 hex digits", a), false
		}
		ctl.Card.Inject(FaultSW(apdu.StatusWord(v)))
		return "ok", false
	case "latency":
		a, ok := arg()
		if !ok {
			break
		}
		d, err := time.ParseDuration(a)
		if err != nil || d < 0 {
			return fmt.Sprintf("error: latency %q: want a duration such as 20ms", a), false
		}
		ctl.Card.SetLatency(d)
		return "ok", false
	case "pin-tries":
		if len(f) != 1 {
			break
		}
		pin, puk := ctl.Card.Tries()
		return fmt.Sprintf("pin=%d puk=%d", pin, puk), false
	default:
		return fmt.Sprintf("error: unknown request %q", f[0]), false
	}
	return fmt.Sprintf("error: bad arguments for %q", f[0]), false
}

// Serve accepts connections on ln and answers their requests until ctx
// ends or a client sends "quit"; onQuit (if not nil) is called then.
// It closes ln before returning.
func (ctl *Control) Serve(ctx context.Context, ln net.Listener, onQuit func()) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var quitOnce sync.Once
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("ciesim: accepting control connection: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			connStop := context.AfterFunc(ctx, func() { conn.Close() })
			defer connStop()
			sc := bufio.NewScanner(conn)
			for sc.Scan() {
				reply, quit := ctl.Handle(sc.Text())
				if _, err := fmt.Fprintln(conn, reply); err != nil {
					return
				}
				if quit {
					quitOnce.Do(func() {
						if onQuit != nil {
							onQuit()
						}
						ln.Close()
					})
					return
				}
			}
		}()
	}
}
