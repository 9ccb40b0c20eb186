package native_test

import (
	"context"
	"testing"
	"time"

	"github.com/runboxhq/runbox/sandbox"
)

func TestScratch(t *testing.T) {
	b := newBackend(t)
	for _, spec := range []sandbox.Spec{
		{Language: "python", Code: "while True: pass", Limits: sandbox.Limits{WallTime: time.Second}},
		{Language: "python", Code: "import time; time.sleep(100)", Limits: sandbox.Limits{WallTime: time.Second}},
		{Language: "bash", Code: "kill -STOP $$", Limits: sandbox.Limits{WallTime: time.Second}},
		{Language: "python", Code: "x = bytearray(512<<20)\nfor i in range(0, len(x), 4096): x[i]=1", Limits: sandbox.Limits{Memory: 64 << 20}},
		{Language: "bash", Code: ":(){ :|:& };:", Limits: sandbox.Limits{WallTime: 2 * time.Second, Processes: 16}},
		{Language: "python", Code: "import os\nn=0\ntry:\n  while True:\n    if os.fork()==0:\n      import time; time.sleep(5); os._exit(0)\n    n+=1\nexcept OSError as e: print(n, e)", Limits: sandbox.Limits{Processes: 8}},
		{Language: "python", Code: "while True: print('x'*1000)", Limits: sandbox.Limits{Stdout: 64 << 10}},
		{Language: "python", Code: "print(\"a\"", Limits: sandbox.Limits{}},
		{Language: "javascript", Code: "console.log((\"a\"", Limits: sandbox.Limits{}},
		{Language: "bash", Code: "if then fi", Limits: sandbox.Limits{}},
		{Language: "python", Code: "def f():\n  1/0\nf()", Limits: sandbox.Limits{}},
		{Language: "python", Code: "import ctypes; ctypes.string_at(0)", Limits: sandbox.Limits{}},
		{Language: "python", Code: "import threading\ndef spin():\n  while True: pass\nimport multiprocessing as m\nps=[m.Process(target=spin) for _ in range(2)]\n[p.start() for p in ps]\nimport time; time.sleep(1.5)", Limits: sandbox.Limits{WallTime: 1 * time.Second}},
		{Language: "bash", Code: "dd if=/dev/zero of=/work/big bs=1M count=200; echo rc=$?; df -h /work /tmp", Limits: sandbox.Limits{}},
		{Language: "bash", Code: "cat /etc/shadow; ls -la /etc; echo hi > /etc/x; echo hi > /usr/x; ping -c1 8.8.8.8; (exec 3<>/dev/tcp/127.0.0.1/22) ; printenv", Limits: sandbox.Limits{}},
		{Command: []string{"/no/such"}},
		{Language: "python", Code: "import sys; sys.stdout.write(sys.stdin.read().upper())", Stdin: []byte("hello stdin\n")},
		{Language: "python", Code: "import os; print(os.listdir('.'), open('data/in.txt').read())", Files: []sandbox.File{{Name: "data/in.txt", Content: []byte("input!")}}},
		{Language: "python", Code: "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); print('listening', s.getsockname())", Limits: sandbox.Limits{Network: "loopback"}},
	} {
		start := time.Now()
		res, err := b.Run(context.Background(), spec)
		if err != nil {
			t.Logf("ERR %v", err)
			if res == nil {
				continue
			}
		}
		ec := -1
		if res.ExitCode != nil {
			ec = *res.ExitCode
		}
		so, se := res.Stdout, res.Stderr
		if len(so) > 300 {
			so = so[:300]
		}
		if len(se) > 300 {
			se = se[:300]
		}
		t.Logf("%q\n  => %s exit=%d sig=%s limit=%s wall=%v(%v) cpu=%v peak=%dMB diag=%+v err=%s\n  out=%q\n  errout=%q", spec.Code, res.Status, ec, res.Signal, res.Limit, res.WallTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), res.CPUTime.Round(time.Millisecond), res.PeakMemory>>20, res.Diagnostic, res.Error, so, se)
	}
}
