package pool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

var responseLines = []string{
	`{"id":7,"result":{"n":2,"pid":12}}`,
	`{"id":7,"result":"a}b"}`,
	`{"id":7,"result":null}`,
	`{"id":7,"result": 5 }`,
	"{\"id\":7,\"result\":0\f}", // not JSON whitespace
	`{"id": 7, "result": 5}`,    // Python's default separators
	`{"result":5,"id":7}`,
	`{"id":7,"result":1,"error":{"message":"m"}}`,
	`{"id":7,"error":{"message":"m","type":"T"}}`,
	`{"id":7,"result":}`,
	`{"id":07,"result":1}`,
	`{"id":,"result":1}`,
	`{"id":7,"result":1},{"id":8,"result":2}`,
	`{"id":7,"result":1`,
	`{"id":99999999999999999999,"result":1}`,
	`this is not a frame`,
	``,
}

// parseResponse agrees with encoding/json on every line, whichever way it reads it.
func TestParseResponseAgreesWithUnmarshal(t *testing.T) {
	for _, line := range responseLines {
		checkParseResponse(t, line)
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, line := range responseLines {
		f.Add(line)
	}
	f.Fuzz(checkParseResponse)
}

func checkParseResponse(t *testing.T, line string) {
	var want response
	wantOK := json.Unmarshal([]byte(line), &want) == nil
	got, ok := parseResponse(line)
	if ok != wantOK || ok && (got.ID != want.ID || !bytes.Equal(got.Result, want.Result) || !reflect.DeepEqual(got.Error, want.Error)) {
		t.Errorf("parseResponse(%q) = %+v, %v; encoding/json: %+v, %v", line, got, ok, want, wantOK)
	}
}

func TestAppendRequest(t *testing.T) {
	line := appendRequest(nil, 42, "call", json.RawMessage(`{"op":"echo","n":1}`))
	if string(line) != `{"id":42,"method":"call","params":{"op":"echo","n":1}}`+"\n" {
		t.Errorf("call: %s", line)
	}
	var req request
	if err := json.Unmarshal(line, &req); err != nil || req.ID != 42 || req.Method != "call" || string(req.Params) != `{"op":"echo","n":1}` {
		t.Errorf("call decodes to %+v, %v", req, err)
	}
	if line := appendRequest(nil, 1, "ping", nil); string(line) != `{"id":1,"method":"ping"}`+"\n" {
		t.Errorf("ping: %s", line)
	}
}

type in struct {
	N int `json:"n"`
}

func double(_ context.Context, x in) (int, error) {
	if x.N < 0 {
		return 0, errors.New("negative")
	}
	return 2 * x.N, nil
}

// respond answers the call envelope without reflection and everything else through
// encoding/json, with the same frames.
func TestRespond(t *testing.T) {
	for _, c := range []struct{ line, want string }{
		{`{"id":3,"method":"call","params":{"n":4}}`, `{"id":3,"result":8}`},
		{`{"id": 3, "method": "call", "params": {"n": 4}}`, `{"id":3,"result":8}`},
		{`{"id":3,"method":"call","params":{"n":4},"extra":1}`, `{"id":3,"result":8}`},
		{`{"id":3,"method":"call","params":{"n":-1}}`, `{"id":3,"error":{"message":"negative"}}`},
		{`{"id":3,"method":"call","params":"x"}`, `{"id":3,"error":{"message":"json: cannot unmarshal string into Go value of type pool.in","type":"BadInput"}}`},
		{`{"id":3,"method":"ping"}`, `{"id":3,"result":"pong"}`},
		{`{"id":3,"method":"init","params":1}`, `{"id":3,"error":{"message":"worker has no initializer","type":"BadRequest"}}`},
		{`{"id":3,"method":"dance"}`, `{"id":3,"error":{"message":"unknown method dance","type":"BadRequest"}}`},
		{`nonsense`, `{"id":0,"error":{"message":"bad request: invalid character 'o' in literal null (expecting 'u')","type":"BadRequest"}}`},
	} {
		if got := respond(nil, []byte(c.line), nil, double); string(got) != c.want+"\n" {
			t.Errorf("respond(%s) = %s, want %s", c.line, got, c.want)
		}
	}
}

func FuzzRespond(f *testing.F) {
	for _, line := range []string{
		`{"id":3,"method":"call","params":{"n":4}}`,
		`{"id":3,"method":"call","params":{"n":4},"id":5}`,
		`{"id":3,"method":"call","params":{"n":4}\f}`,
		`{"id":3,"method":"call","params":7}`,
		`{"id":3,"method":"ping"}`,
	} {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got := respond(nil, []byte(line), nil, double)
		if want := respondDecoded(nil, []byte(line), nil, double); !bytes.Equal(got, want) {
			t.Errorf("respond(%q) = %s; decoded: %s", line, got, want)
		}
	})
}
