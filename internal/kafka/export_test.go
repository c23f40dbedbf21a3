package kafka

import "time"

// AlertWatermark is the watermark an alert-stage checkpoint has reached
// (EndOfTime: the end of input), for tests of package kafka_test.
func AlertWatermark(b []byte) (time.Time, error) {
	s, err := decodeAlertState(b)
	return s.wm, err
}
