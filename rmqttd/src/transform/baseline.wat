;; The floor that `rmqttd transform bench` measures a module against: a transform that
;; returns the payload unchanged in one record, without looking at it. What it costs is
;; the host's part of every call: the input copied in, the call, the output checked.
(module
  (memory (export "memory") 2)
  (func (export "rmqtt_transform_abi_v1"))
  (func (export "rmqtt_transform_reserve") (param i32) (result i32) (i32.const 65536))
  (func (export "rmqtt_transform") (param $in i32) (param $len i32) (result i64)
    (local $p i32)
    ;; the payload's length field: in + 24 (fixed part) + 4 + topic length
    (local.set $p (i32.add (i32.add (local.get $in) (i32.const 28)) (i32.load (i32.add (local.get $in) (i32.const 24)))))
    ;; OK header with one record at 1024, the record descriptor at 1032
    (i32.store (i32.const 1024) (i32.const 0))
    (i32.store (i32.const 1028) (i32.const 1))
    (memory.fill (i32.const 1032) (i32.const 0) (i32.const 48))
    (i32.store (i32.const 1052) (i32.const -1))                      ;; topic: the entry's
    (i32.store (i32.const 1060) (i32.const -1))                      ;; key: the entry's
    (i32.store (i32.const 1064) (i32.add (local.get $p) (i32.const 4)))
    (i32.store (i32.const 1068) (i32.load (local.get $p)))
    (i64.const 0x0000040000000038))
)
