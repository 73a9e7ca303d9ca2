;; Test guest: tries to grow a table to 2^32-1 elements, which the tenant's
;; limiter must refuse. Written as a component by hand because no Rust
;; intrinsic grows a table. It fits the warden:agent/agent world: it exports
;; warden:agent/handler@0.1.0 and imports nothing.
;;
;; `handle` returns err(failed("table growth refused")) when table.grow
;; reports -1, and ok(empty) if the table grew. Return area at 512 holds the
;; canonical ABI layout of result<list<u8>, error>: tag at +0, then either
;; the list (ptr at +4, len at +8) or the error variant (tag at +4, string
;; ptr at +8, len at +12).
(component
  (core module $m
    (table $t 1 funcref)
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 1024))
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (local.get 3)))
      (local.get $p))
    (func (export "handle") (param i32 i32) (result i32)
      (if (i32.eq (table.grow $t (ref.null func) (i32.const -2)) (i32.const -1))
        (then
          (i32.store8 (i32.const 512) (i32.const 1))
          (i32.store8 (i32.const 516) (i32.const 1))
          (i32.store (i32.const 520) (i32.const 0))
          (i32.store (i32.const 524) (i32.const 20))
          (return (i32.const 512))))
      (i32.store8 (i32.const 512) (i32.const 0))
      (i32.store (i32.const 516) (i32.const 0))
      (i32.store (i32.const 520) (i32.const 0))
      (i32.const 512))
    (data (i32.const 0) "table growth refused"))
  (core instance $i (instantiate $m))
  (type $error (variant (case "invalid-input" string) (case "failed" string)))
  (type $handle-ty (func (param "input" (list u8)) (result (result (list u8) (error $error)))))
  (func $handle (type $handle-ty)
    (canon lift (core func $i "handle") (memory (core memory $i "memory")) (realloc (core func $i "cabi_realloc"))))
  (instance $handler
    (export "error" (type $error))
    (export "handle" (func $handle)))
  (export "warden:agent/handler@0.1.0" (instance $handler)))
