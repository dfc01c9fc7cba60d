; Definitions
; Dart's grammar keeps a function's signature and body as siblings, so a
; definition spans its signature only.

(class_definition
  name: (identifier) @name.definition.class) @definition.class

(mixin_declaration
  (identifier) @name.definition.class) @definition.class

(extension_declaration
  name: (identifier) @name.definition.class) @definition.class

(enum_declaration
  name: (identifier) @name.definition.enum) @definition.enum

(type_alias
  (type_identifier) @name.definition.type) @definition.type

(method_signature
  (function_signature
    name: (identifier) @name.definition.method)) @definition.method

(method_signature
  (getter_signature
    name: (identifier) @name.definition.method)) @definition.method

(method_signature
  (setter_signature
    name: (identifier) @name.definition.method)) @definition.method

(method_signature
  (constructor_signature
    name: (identifier) @name.definition.method)) @definition.method

(declaration
  (function_signature
    name: (identifier) @name.definition.method)) @definition.method

(program
  (function_signature
    name: (identifier) @name.definition.function) @definition.function)

(class_body
  (declaration
    (initialized_identifier_list
      (initialized_identifier
        (identifier) @name.definition.field))) @definition.field)

; References

(expression_statement
  (identifier) @name.reference.call
  .
  (selector (argument_part)))

(return_statement
  (identifier) @name.reference.call
  .
  (selector (argument_part)))

(argument
  (identifier) @name.reference.call
  .
  (selector (argument_part)))

(selector
  (unconditional_assignable_selector
    (identifier) @name.reference.call))

(superclass
  (type_identifier) @name.reference.class)
