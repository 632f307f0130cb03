// Command pinentry is the scripted pinentry of the browser tests: it
// speaks the pinentry protocol like `cie-tray pinentry`, answers GETPIN
// from a list instead of asking anybody, and records every dialog it was
// asked to show, so that a test can check what the user would have seen.
//
// Environment:
//
//	CIE_TEST_PINENTRY_ANSWERS  comma-separated answers, one per dialog, in order
//	                           ("cancel" cancels); once used up, dialogs are cancelled
//	CIE_TEST_PINENTRY_LOG      file to which each dialog is appended as one JSON
//	                           line; it also numbers the dialogs across processes
//
// The record holds the texts (SETTITLE, SETDESC, SETPROMPT, SETERROR), the
// OPTIONs, the request (GETPIN or MESSAGE) and whether it was answered or
// cancelled — never the answer itself.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

type record struct {
	Request  string            `json:"request"`
	Title    string            `json:"title,omitempty"`
	Desc     string            `json:"desc,omitempty"`
	Prompt   string            `json:"prompt,omitempty"`
	Error    string            `json:"error,omitempty"`
	Options  map[string]string `json:"options,omitempty"`
	Answered bool              `json:"answered"`
	PID      int               `json:"pid"`
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '%' || c < 0x20 {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// next appends the record and returns the answer for it: the dialogs
// recorded before (across processes) number the answers.
func next(r record) (string, bool) {
	path := os.Getenv("CIE_TEST_PINENTRY_LOG")
	if path == "" {
		return "", false
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return "", false
	}
	defer f.Close()
	syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	old, _ := os.ReadFile(path)
	n := 0
	for _, line := range bytes.Split(old, []byte("\n")) {
		if bytes.Contains(line, []byte(`"request":"GETPIN"`)) {
			n++
		}
	}
	var answer string
	if r.Request == "GETPIN" {
		answers := strings.Split(os.Getenv("CIE_TEST_PINENTRY_ANSWERS"), ",")
		if n < len(answers) && answers[n] != "" && answers[n] != "cancel" {
			answer = answers[n]
		}
	}
	r.Answered = answer != "" || r.Request == "MESSAGE"
	b, _ := json.Marshal(r)
	f.Write(append(b, '\n'))
	return answer, r.Answered
}

func main() {
	out := bufio.NewWriter(os.Stdout)
	say := func(lines ...string) {
		for _, l := range lines {
			out.WriteString(l + "\n")
		}
		out.Flush()
	}
	say("OK Pleased to meet you (scripted test pinentry)")
	r := record{Options: map[string]string{}, PID: os.Getpid()}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch strings.ToUpper(cmd) {
		case "SETTITLE":
			r.Title = unescape(arg)
		case "SETDESC":
			r.Desc = unescape(arg)
		case "SETPROMPT":
			r.Prompt = unescape(arg)
		case "SETERROR":
			r.Error = unescape(arg)
		case "OPTION":
			name, value, _ := strings.Cut(unescape(arg), "=")
			r.Options[name] = value
		case "GETPIN", "MESSAGE":
			r.Request = strings.ToUpper(cmd)
			answer, ok := next(r)
			switch {
			case !ok:
				say("ERR 83886179 Operation cancelled <Pinentry>")
			case answer != "":
				say("D "+escape(answer), "OK")
			default:
				say("OK")
			}
			r.Error = "" // SETERROR is for one dialog
			continue
		case "BYE":
			say("OK closing connection")
			return
		}
		say("OK")
	}
}
