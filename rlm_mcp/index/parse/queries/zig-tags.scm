; Definitions

(Decl
  (VarDecl
    variable_type_function: (IDENTIFIER) @name.definition.struct
    (ErrorUnionExpr
      (SuffixExpr
        (ContainerDecl
          (ContainerDeclType "struct")))))) @definition.struct

(Decl
  (VarDecl
    variable_type_function: (IDENTIFIER) @name.definition.enum
    (ErrorUnionExpr
      (SuffixExpr
        (ContainerDecl
          (ContainerDeclType "enum")))))) @definition.enum

(Decl
  (VarDecl
    variable_type_function: (IDENTIFIER) @name.definition.struct
    (ErrorUnionExpr
      (SuffixExpr
        (ContainerDecl
          (ContainerDeclType "union")))))) @definition.struct

(Decl
  (FnProto
    function: (IDENTIFIER) @name.definition.function)) @definition.function

(source_file
  (Decl
    (VarDecl
      variable_type_function: (IDENTIFIER) @name.definition.constant)) @definition.constant)

(ContainerField
  field_member: (IDENTIFIER) @name.definition.field) @definition.field

; References

(SuffixExpr
  variable_type_function: (IDENTIFIER) @name.reference.call
  .
  (FnCallArguments))

(FieldOrFnCall
  function_call: (IDENTIFIER) @name.reference.call)
