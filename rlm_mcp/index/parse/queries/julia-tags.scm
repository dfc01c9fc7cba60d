; Definitions

(module_definition
  name: (identifier) @name.definition.module) @definition.module

(struct_definition
  (type_head
    [
      (identifier) @name.definition.struct
      (binary_expression . (identifier) @name.definition.struct)
      (parametrized_type_expression . (identifier) @name.definition.struct)
    ])) @definition.struct

(abstract_definition
  (type_head
    [
      (identifier) @name.definition.type
      (binary_expression . (identifier) @name.definition.type)
    ])) @definition.type

(function_definition
  (signature
    [
      (call_expression . (identifier) @name.definition.function)
      (where_expression . (call_expression . (identifier) @name.definition.function))
      (typed_expression . (call_expression . (identifier) @name.definition.function))
    ])) @definition.function

(macro_definition
  (signature
    (call_expression . (identifier) @name.definition.macro))) @definition.macro

(assignment
  .
  (call_expression . (identifier) @name.definition.function)
  (operator) @_op
  (#eq? @_op "=")) @definition.function

(const_statement
  (assignment . (identifier) @name.definition.constant)) @definition.constant

; References

(call_expression
  .
  [
    (identifier) @name.reference.call
    (field_expression (identifier) @name.reference.call .)
  ])
