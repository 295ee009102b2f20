{{ config(alias='shopify_customers') }}
{{ quarantine_view('shopify', 'customers') }}
